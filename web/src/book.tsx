// Booking: specialty -> doctor -> a week of free slots in the patient's own zone -> book.
// Also moves an appointment (?move=ID) and, for the front desk, books for a patient (?patient=ID).
import { useEffect, useRef, useState } from "preact/hooks";
import { all, call, type Appointment, type Slot } from "./api";
import { goToAppointment, type Role } from "./appointments";
import { addDays, city, day, isoDate, myZone, parseDate, time, when } from "./time";
import { Alert, Button, go, href, isApiError, loadDoctors, loadPatient, Notice, Page, useAction, useLoad, type Route } from "./ui";

export function Book({ route, role }: { route: Route; role: Role }) {
  const p = route.params;
  const doctorId = p.get("doctor") ?? "";
  const moveId = p.get("move");
  const patientId = role === "admin" ? p.get("patient") : null;
  // A week is seven days from the day asked for (today, at the earliest).
  const thisWeek = parseDate(isoDate(new Date()))!;
  const requested = parseDate(p.get("week"));
  const week = requested && requested > thisWeek ? requested : thisWeek;
  const set = (changes: Record<string, string | null>) =>
    go("/book", { doctor: doctorId, week: p.get("week"), move: moveId, patient: patientId, specialty: p.get("specialty"), ...changes });

  const [doctors, doctorsError] = useLoad(() => loadDoctors(), []);
  const doctor = doctors?.find((d) => d.id === doctorId);
  const specialty = p.get("specialty") ?? doctor?.specialty ?? "";
  const specialties = [...new Set((doctors ?? []).map((d) => d.specialty))].sort();
  const [moving] = useLoad(() => (moveId ? call("getAppointment", { path: { appointment_id: moveId } }) : Promise.resolve(null)), [moveId]);
  const [patient, patientError] = useLoad(() => (patientId ? loadPatient(patientId) : Promise.resolve(null)), [patientId]);

  // The doctor's days around the patient's week (zones differ by up to a day each way).
  const [slots, slotsError, reloadSlots] = useLoad(async () => {
    if (!doctorId) return [] as Slot[];
    const items = await all<"listFreeSlots", Slot>("listFreeSlots", {
      path: { doctor_id: doctorId },
      query: { from: isoDate(addDays(week, -1)), to: isoDate(addDays(week, 7)), page_size: 1000 },
    });
    const from = week.getTime(), to = addDays(week, 7).getTime();
    return items.filter((s) => {
      const t = new Date(s.start_time).getTime();
      return t >= from && t < to;
    });
  }, [doctorId, isoDate(week)]);

  const [chosen, setChosen] = useState<Slot | null>(null);
  const [reason, setReason] = useState("");
  const [taken, setTaken] = useState(false);
  const panel = useRef<HTMLHeadingElement>(null);
  useEffect(() => setChosen(null), [doctorId, isoDate(week)]);
  useEffect(() => {
    if (chosen) panel.current?.focus();
  }, [chosen]);

  const [book, pending, error, setError] = useAction(async () => {
    if (!chosen) return;
    setTaken(false);
    try {
      let result: Appointment;
      if (moveId) {
        result = await call("changeAppointment", { path: { appointment_id: moveId }, body: { slot_id: chosen.id } });
      } else {
        result = await call("bookAppointment", {
          body: { slot_id: chosen.id, reason: reason.trim() || null, ...(patientId ? { patient_id: patientId } : {}) },
        });
      }
      goToAppointment(result.id, moveId ? "moved" : "booked");
    } catch (e) {
      if (isApiError(e, "/slot-taken") || isApiError(e, "/slot-held")) {
        // Someone else was faster: say so and show the week without that slot.
        setTaken(true);
        setChosen(null);
        reloadSlots();
      }
      throw e;
    }
  });
  useEffect(() => setError(null), [doctorId, isoDate(week)]);

  const byDay = new Map<string, Slot[]>();
  for (let i = 0; i < 7; i++) byDay.set(isoDate(addDays(week, i)), []);
  for (const s of slots ?? []) byDay.get(isoDate(new Date(s.start_time)))?.push(s);
  const otherZone = doctor && doctor.timezone !== myZone;
  const title = moveId ? "Move an appointment" : patientId ? "Book for a patient" : "Book an appointment";

  return (
    <Page title={title}>
      {moving ? <Notice>Moving the appointment of {when(moving.start_time, moving.end_time)}: choose its new time.</Notice> : null}
      {patient ? <Notice>Booking for {patient.name} ({patient.email}).</Notice> : null}
      {role === "admin" && !patientId && !moveId ? (
        <p>
          To book, first <a href={href("/desk")}>find the patient at the front desk</a>; here you can look at free times.
        </p>
      ) : null}
      <Alert error={doctorsError || patientError} />
      <div class="pickers">
        <label>
          Specialty
          <select value={specialty} onChange={(e) => set({ specialty: (e.target as HTMLSelectElement).value || null, doctor: null })}>
            <option value="">Any specialty</option>
            {specialties.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Doctor
          <select value={doctorId} onChange={(e) => set({ doctor: (e.target as HTMLSelectElement).value || null })}>
            <option value="">Choose a doctor</option>
            {(doctors ?? [])
              .filter((d) => !specialty || d.specialty === specialty)
              .map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name} ({d.specialty})
                </option>
              ))}
          </select>
        </label>
      </div>
      {doctor ? (
        <section aria-labelledby="week-title">
          <h2 id="week-title">
            Free times, {day(week)} to {day(addDays(week, 6))}
          </h2>
          <p class="muted" id="zone-note">
            Times are in your time zone ({city(myZone)}).
            {otherZone ? ` ${doctor.name} works in ${city(doctor.timezone)} time (${doctor.timezone}).` : ""}
          </p>
          <nav class="weeknav" aria-label="Weeks">
            {week > thisWeek ? (
              <a class="btn plain" href={href("/book", { doctor: doctorId, move: moveId, patient: patientId, week: isoDate(addDays(week, -7)) })}>
                ← Previous week
              </a>
            ) : (
              <span />
            )}
            <label class="goto">
              From
              <input
                type="date"
                value={isoDate(week)}
                min={isoDate(thisWeek)}
                onChange={(e) => {
                  const v = (e.target as HTMLInputElement).value;
                  if (parseDate(v)) set({ week: v });
                }}
              />
            </label>
            <a class="btn plain" href={href("/book", { doctor: doctorId, move: moveId, patient: patientId, week: isoDate(addDays(week, 7)) })}>
              Next week →
            </a>
          </nav>
          {taken ? null : <Alert error={slotsError} />}
          {taken ? (
            <p class="alert" role="alert">
              Sorry, that time was just taken by someone else. The list below is up to date: please choose another time.
            </p>
          ) : null}
          {slots ? (
            <ol class="week" aria-describedby="zone-note">
              {[...byDay].map(([date, list]) => (
                <li key={date} class="day">
                  <h3>{day(parseDate(date)!)}</h3>
                  {list.length ? (
                    <ul class="slots">
                      {list.map((s) => (
                        <li key={s.id}>
                          <button
                            type="button"
                            class={chosen?.id === s.id ? "slot chosen" : "slot"}
                            aria-pressed={chosen?.id === s.id}
                            aria-label={`${day(s.start_time)} ${time(s.start_time)} to ${time(s.end_time)}${otherZone ? `, ${time(s.start_time, doctor.timezone)} in ${city(doctor.timezone)}` : ""}`}
                            onClick={() => {
                              setChosen(s);
                              setTaken(false);
                            }}
                          >
                            {time(s.start_time)}
                            {otherZone ? <small>{time(s.start_time, doctor.timezone)} {city(doctor.timezone)}</small> : null}
                          </button>
                        </li>
                      ))}
                    </ul>
                  ) : (
                    <p class="muted">No free times</p>
                  )}
                </li>
              ))}
            </ol>
          ) : null}
          {slots && !slots.length ? <p>No free times this week. Try the next week.</p> : null}
          {slots && !slots.length && role === "patient" && !moveId ? <JoinWaitlist doctorId={doctorId} doctorName={doctor.name} week={week} /> : null}
        </section>
      ) : null}
      {chosen && doctor && (role !== "admin" || patientId || moveId) ? (
        <section class="panel" aria-labelledby="chosen-title">
          <h2 id="chosen-title" tabIndex={-1} ref={panel}>
            {when(chosen.start_time, chosen.end_time)} with {doctor.name}
          </h2>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              book();
            }}
          >
            {moveId ? null : (
              <label>
                Reason for the visit (optional)
                <textarea maxLength={1000} rows={3} value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
              </label>
            )}
            <Button type="submit" kind="primary" pending={pending}>
              {moveId ? "Move here" : "Book this time"}
            </Button>
          </form>
        </section>
      ) : null}
      {taken ? null : <Alert error={error} />}
      {role === "patient" ? (
        <p>
          <a href={href("/appointments")}>My appointments</a>
        </p>
      ) : null}
    </Page>
  );
}

/** Where a doctor has no free time in the week: wait for one that frees up. */
function JoinWaitlist({ doctorId, doctorName, week }: { doctorId: string; doctorName: string; week: Date }) {
  const [joined, setJoined] = useState(false);
  const [join, pending, error] = useAction(async () => {
    await call("joinWaitlist", { body: { doctor_id: doctorId, from: isoDate(week), to: isoDate(addDays(week, 6)) } });
    setJoined(true);
  });
  useEffect(() => setJoined(false), [doctorId, isoDate(week)]);
  if (joined)
    return (
      <Notice>
        You are on {doctorName}'s waitlist for this week. When a time frees up it is held for you and we email you;{" "}
        <a href={href("/appointments")}>My appointments</a> shows it.
      </Notice>
    );
  return (
    <section class="panel" aria-labelledby="waitlist-title">
      <h3 id="waitlist-title">Join the waitlist</h3>
      <p>If a time with {doctorName} frees up this week, it is held for you for a few minutes and we email you to accept it.</p>
      <Button kind="primary" pending={pending} onClick={() => join()}>
        Join the waitlist
      </Button>
      <Alert error={error} />
    </section>
  );
}
