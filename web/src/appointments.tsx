// Appointments: one card with what the signed-in user may do to it, the patient's list, one page.
import { useEffect, useState } from "preact/hooks";
import { all, call, type Appointment, type Doctor, type Patient, type WaitlistEntry } from "./api";
import type { Claims } from "./auth";
import { city, day, myZone, time, when } from "./time";
import { Alert, Button, go, href, loadDoctors, loadPatient, Notice, Page, STATUS, useAction, useLoad, type Route } from "./ui";

export type Role = NonNullable<Claims["role"]>;

function started(a: Appointment): boolean {
  return new Date(a.start_time).getTime() <= Date.now();
}

export function Card({
  appointment,
  role,
  doctor,
  patient,
  onChange,
  headingLevel = 3,
}: {
  appointment: Appointment;
  role: Role;
  doctor?: Doctor;
  patient?: Patient;
  onChange: (a: Appointment) => void;
  headingLevel?: 2 | 3 | 4;
}) {
  const a = appointment;
  const [confirming, setConfirming] = useState(false);
  const [act, pending, error] = useAction(async (status: "CANCELLED" | "COMPLETED" | "NO_SHOW") => {
    const changed = await call("changeAppointment", { path: { appointment_id: a.id }, body: { status } });
    setConfirming(false);
    onChange(changed);
  });
  const booked = a.status === "BOOKED";
  const canMove = booked && !started(a);
  const canCancel = booked && (role !== "patient" || !started(a));
  const canMark = booked && started(a) && role !== "patient";
  const H = (["h2", "h3", "h4"] as const)[headingLevel - 2];
  // Under a day's heading (the doctor's week) the time alone says when.
  const title = headingLevel === 4 ? `${time(a.start_time)}–${time(a.end_time)}` : when(a.start_time, a.end_time);
  return (
    <article class={`card status-${a.status.toLowerCase()}`} aria-label={`Appointment ${when(a.start_time, a.end_time)}`}>
      <H class="card-title">
        <a href={href(`/appointments/${a.id}`)}>{title}</a>
      </H>
      <p>
        <span class="badge">{STATUS[a.status] ?? a.status}</span>{" "}
        {role !== "doctor" && doctor ? `${doctor.name}, ${doctor.specialty}` : null}
        {role !== "patient" && patient ? <span class="who">Patient: {patient.name}</span> : null}
      </p>
      {doctor && doctor.timezone !== myZone ? (
        <p class="muted">
          In {city(doctor.timezone)}: {new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZone: doctor.timezone }).format(new Date(a.start_time))}
        </p>
      ) : null}
      {a.reason ? <p class="reason">Reason: {a.reason}</p> : null}
      <div class="actions">
        {canMark ? (
          <>
            <Button kind="primary" pending={pending} onClick={() => act("COMPLETED")}>
              Mark completed
            </Button>
            <Button pending={pending} onClick={() => act("NO_SHOW")}>
              Mark no-show
            </Button>
          </>
        ) : null}
        {canMove ? (
          <a class="btn plain" href={href("/book", { move: a.id, doctor: a.doctor_id, patient: role === "admin" ? a.patient_id : null })}>
            Move
          </a>
        ) : null}
        {canCancel && !confirming ? (
          <Button kind="danger" onClick={() => setConfirming(true)}>
            Cancel
          </Button>
        ) : null}
      </div>
      {confirming ? (
        <div class="confirm" role="group" aria-label="Cancel this appointment?">
          <p>Cancel this appointment?</p>
          <Button kind="danger" pending={pending} onClick={() => act("CANCELLED")}>
            Yes, cancel it
          </Button>
          <Button onClick={() => setConfirming(false)}>Keep it</Button>
        </div>
      ) : null}
      <Alert error={error} />
    </article>
  );
}

/** Doctors and patients named on cards, loaded once per list. */
export function useNames(items: Appointment[] | undefined, role: Role) {
  const [doctors, setDoctors] = useState<Map<string, Doctor>>(new Map());
  const [patients, setPatients] = useState<Map<string, Patient>>(new Map());
  useEffect(() => {
    loadDoctors().then((list) => setDoctors(new Map(list.map((d) => [d.id, d]))), () => undefined);
  }, []);
  // Keyed by the ids, not the array: a list made anew on each render must not fetch again.
  const ids = role === "patient" ? "" : [...new Set((items ?? []).map((a) => a.patient_id))].sort().join(",");
  useEffect(() => {
    if (!ids) return;
    let live = true;
    Promise.allSettled(ids.split(",").map(loadPatient)).then(
      (results) =>
        live &&
        setPatients(new Map(results.flatMap((r) => (r.status === "fulfilled" ? [[r.value.id, r.value] as const] : [])))),
    );
    return () => {
      live = false;
    };
  }, [ids]);
  return { doctors, patients };
}

export function List({
  items,
  role,
  empty,
  onChange,
  headingLevel = 3,
}: {
  items: Appointment[];
  role: Role;
  empty: string;
  onChange: () => void;
  headingLevel?: 3 | 4;
}) {
  const { doctors, patients } = useNames(items, role);
  if (!items.length) return <p class="muted">{empty}</p>;
  return (
    <ul class="cards">
      {items.map((a) => (
        <li key={a.id}>
          <Card
            appointment={a}
            role={role}
            doctor={doctors.get(a.doctor_id)}
            patient={patients.get(a.patient_id)}
            onChange={onChange}
            headingLevel={headingLevel}
          />
        </li>
      ))}
    </ul>
  );
}

export function split(items: Appointment[]): [Appointment[], Appointment[]] {
  const now = Date.now();
  const upcoming = items.filter((a) => a.status === "BOOKED" && new Date(a.end_time).getTime() > now);
  const past = items.filter((a) => !upcoming.includes(a)).reverse();
  return [upcoming, past];
}

export function MyAppointments({ role }: { role: Role }) {
  const [items, error, reload] = useLoad(() => all<"listAppointments", Appointment>("listAppointments", { query: { page_size: 100 } }), []);
  const [upcoming, past] = split(items ?? []);
  return (
    <Page title="My appointments">
      <p>
        <a class="btn primary" href={href("/book")}>
          Book an appointment
        </a>
      </p>
      <Alert error={error} />
      {role === "patient" ? <Waitlist onBooked={reload} /> : null}
      {items ? (
        <>
          <h2>Upcoming</h2>
          <List items={upcoming} role={role} empty="No upcoming appointments." onChange={reload} />
          <h2>Past and cancelled</h2>
          <List items={past} role={role} empty="None yet." onChange={reload} />
        </>
      ) : null}
    </Page>
  );
}

export function AppointmentPage({ id, role, route }: { id: string; role: Role; route: Route }) {
  const [a, error, reload] = useLoad(() => call("getAppointment", { path: { appointment_id: id } }), [id]);
  const { doctors, patients } = useNames(a ? [a] : undefined, role);
  const [current, setCurrent] = useState<Appointment | null>(null);
  const shown = current && current.id === id ? current : a;
  const done = route.params.get("done");
  return (
    <Page title="Appointment">
      {done === "booked" ? <Notice>Your appointment is booked. A confirmation email is on its way.</Notice> : null}
      {done === "moved" ? <Notice>The appointment was moved to the new time.</Notice> : null}
      <Alert error={error} />
      {shown ? (
        <Card
          appointment={shown}
          role={role}
          doctor={doctors.get(shown.doctor_id)}
          patient={patients.get(shown.patient_id)}
          headingLevel={2}
          onChange={(changed) => {
            setCurrent(changed);
            reload();
          }}
        />
      ) : null}
      {shown && shown.status === "CANCELLED" ? <Notice>This appointment is cancelled.</Notice> : null}
      <p>
        <a href={href(role === "doctor" ? "/doctor" : role === "admin" ? "/desk" : "/appointments", role === "admin" && shown ? { patient: shown.patient_id } : {})}>
          {role === "doctor" ? "Back to my schedule" : role === "admin" ? "Back to the front desk" : "All my appointments"}
        </a>
      </p>
    </Page>
  );
}

export function goToAppointment(id: string, done: string): void {
  go(`/appointments/${id}`, { done });
}

/** The seconds left until `instant`, ticking every second. */
function useSecondsLeft(instant: string | undefined): number {
  const left = () => (instant ? Math.max(0, Math.floor((new Date(instant).getTime() - Date.now()) / 1000)) : 0);
  const [seconds, setSeconds] = useState(left);
  useEffect(() => {
    setSeconds(left());
    if (!instant) return;
    const timer = setInterval(() => setSeconds(left()), 1000);
    return () => clearInterval(timer);
  }, [instant]);
  return seconds;
}

/** A patient's waitlist: offers first (a held time, with the time left and one-click accept), then the entries waiting. */
function Waitlist({ onBooked }: { onBooked: () => void }) {
  const [entries, error, reload] = useLoad(() => all<"listWaitlist", WaitlistEntry>("listWaitlist", { query: { page_size: 100 } }), []);
  const { doctors } = useNames([], "patient");
  if (!entries?.length) return <Alert error={error} />;
  const offers = entries.filter((e) => e.offer);
  const waiting = entries.filter((e) => !e.offer);
  const name = (id: string) => doctors.get(id)?.name ?? "your doctor";
  return (
    <>
      <Alert error={error} />
      {offers.length ? (
        <section aria-labelledby="offers-title">
          <h2 id="offers-title">Held for you</h2>
          <ul class="cards">
            {offers.map((e) => (
              <li key={e.id}>
                <Offer entry={e} doctorName={name(e.doctor_id)} onDone={() => (reload(), onBooked())} />
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {waiting.length ? (
        <section aria-labelledby="waiting-title">
          <h2 id="waiting-title">On the waitlist</h2>
          <ul class="cards">
            {waiting.map((e) => (
              <li key={e.id}>
                <Waiting entry={e} doctorName={name(e.doctor_id)} onDone={reload} />
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </>
  );
}

function Offer({ entry, doctorName, onDone }: { entry: WaitlistEntry; doctorName: string; onDone: () => void }) {
  const offer = entry.offer!;
  const seconds = useSecondsLeft(offer.expires_at);
  const [accept, accepting, acceptError] = useAction(async () => {
    // The offer shown: if it ended and another was offered since, the API refuses (409).
    const booked = await call("acceptOffer", { path: { entry_id: entry.id }, body: { offer_id: offer.id } });
    goToAppointment(booked.id, "booked");
  });
  const [decline, declining, declineError] = useAction(async () => {
    await call("declineOffer", { path: { entry_id: entry.id }, body: { offer_id: offer.id } });
    onDone();
  });
  const left = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  return (
    <article class="card offer" aria-label={`Offer: ${when(offer.start_time, offer.end_time)} with ${doctorName}`}>
      <h3>
        {when(offer.start_time, offer.end_time)} with {doctorName}
      </h3>
      <p role="timer" aria-live="off">
        {seconds > 0 ? <>Held for you for another <strong>{left}</strong> (until {time(offer.expires_at)}).</> : "This offer has ended."}
      </p>
      {seconds > 0 ? (
        <div class="actions">
          <Button kind="primary" pending={accepting} onClick={() => accept()}>
            Accept and book
          </Button>
          <Button pending={declining} onClick={() => decline()}>
            Decline
          </Button>
        </div>
      ) : null}
      <Alert error={acceptError || declineError} />
    </article>
  );
}

function Waiting({ entry, doctorName, onDone }: { entry: WaitlistEntry; doctorName: string; onDone: () => void }) {
  const [leave, leaving, error] = useAction(async () => {
    await call("leaveWaitlist", { path: { entry_id: entry.id } });
    onDone();
  });
  const last = new Date(new Date(entry.range_end).getTime() - 1);
  return (
    <article class="card" aria-label={`Waitlist: ${doctorName}`}>
      <h3>{doctorName}</h3>
      <p>
        Waiting for a time from {day(entry.range_start)} to {day(last)}
        {entry.start && entry.end ? `, between ${entry.start.slice(0, 5)} and ${entry.end.slice(0, 5)} (the doctor's time)` : ""}.
      </p>
      <Button pending={leaving} onClick={() => leave()}>
        Leave the waitlist
      </Button>
      <Alert error={error} />
    </article>
  );
}
