// The doctor's page: today's and this week's schedule with patients and reasons, and
// publishing availability windows.
import { useState } from "preact/hooks";
import { all, call, type Appointment, type PublishedSlots, type Slot } from "./api";
import { List, type Role } from "./appointments";
import { addDays, city, day, isoDate, myZone, parseDate, time, weekStart } from "./time";
import { Alert, Button, href, Notice, Page, useAction, useLoad, type Route } from "./ui";

export function DoctorPage({ route, me, role }: { route: Route; me: string; role: Role }) {
  const thisWeek = weekStart(new Date());
  const week = weekStart(parseDate(route.params.get("week")) ?? new Date());
  const [profile, profileError] = useLoad(() => call("getDoctor", { path: { doctor_id: me } }), [me]);
  const [data, error, reload] = useLoad(async () => {
    const [appointments, free] = await Promise.all([
      all<"listAppointments", Appointment>("listAppointments", {
        query: { from: week.toISOString(), to: addDays(week, 7).toISOString(), page_size: 100 },
      }),
      all<"listFreeSlots", Slot>("listFreeSlots", {
        path: { doctor_id: me },
        query: { from: isoDate(addDays(week, -1)), to: isoDate(addDays(week, 7)), page_size: 1000 },
      }),
    ]);
    return { appointments, free };
  }, [me, isoDate(week)]);

  const today = isoDate(new Date());
  const days = Array.from({ length: 7 }, (_, i) => isoDate(addDays(week, i)));
  const on = (d: string) => (data?.appointments ?? []).filter((a) => isoDate(new Date(a.start_time)) === d);
  const freeOn = (d: string) => (data?.free ?? []).filter((s) => isoDate(new Date(s.start_time)) === d).length;

  return (
    <Page title="My schedule">
      <Alert error={profileError || error} />
      {profile && profile.timezone !== myZone ? (
        <p class="muted">
          Times are shown in this device's zone ({myZone}); your clinic's zone is {profile.timezone}.
        </p>
      ) : null}
      {isoDate(week) === isoDate(thisWeek) ? (
        <section aria-labelledby="today">
          <h2 id="today">Today</h2>
          {data ? <List items={on(today)} role={role} empty="No appointments today." onChange={reload} /> : null}
        </section>
      ) : null}
      <section aria-labelledby="week">
        <h2 id="week">Week of {day(week)}</h2>
        <nav class="weeknav" aria-label="Weeks">
          <a class="btn plain" href={href("/doctor", { week: isoDate(addDays(week, -7)) })}>
            ← Previous week
          </a>
          <a class="btn plain" href={href("/doctor", { week: isoDate(addDays(week, 7)) })}>
            Next week →
          </a>
        </nav>
        {data ? (
          <ol class="schedule">
            {days.map((d) => (
              <li key={d} class="day" data-date={d}>
                <h3>
                  {day(parseDate(d)!)} <span class="muted">· {freeOn(d)} free</span>
                </h3>
                <List items={on(d)} role={role} empty="No appointments." onChange={reload} headingLevel={4} />
              </li>
            ))}
          </ol>
        ) : null}
      </section>
      {profile ? <Publish doctorId={me} zone={profile.timezone} onDone={reload} /> : null}
    </Page>
  );
}

function Publish({ doctorId, zone, onDone }: { doctorId: string; zone: string; onDone: () => void }) {
  const [form, setForm] = useState({ date: isoDate(addDays(new Date(), 1)), start: "09:00", end: "12:00", slot_minutes: "30" });
  const [result, setResult] = useState<PublishedSlots | null>(null);
  const [publish, pending, error] = useAction(async () => {
    setResult(null);
    const made = await call("publishSlots", {
      path: { doctor_id: doctorId },
      body: { date: form.date, start: form.start, end: form.end, slot_minutes: Number(form.slot_minutes) },
    });
    setResult(made);
    onDone();
  });
  const field = (name: keyof typeof form) => ({
    value: form[name],
    onInput: (e: Event) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value }),
    required: true,
  });
  return (
    <section aria-labelledby="publish">
      <h2 id="publish">Publish availability</h2>
      <p class="muted">Date and times are in your clinic's zone ({city(zone)}, {zone}).</p>
      <form
        class="grid-form"
        onSubmit={(e) => {
          e.preventDefault();
          publish();
        }}
      >
        <label>
          Date
          <input type="date" {...field("date")} />
        </label>
        <label>
          Start
          <input type="time" {...field("start")} />
        </label>
        <label>
          End
          <input type="time" {...field("end")} />
        </label>
        <label>
          Slot length (minutes)
          <input type="number" min={5} max={480} step={5} {...field("slot_minutes")} />
        </label>
        <Button type="submit" kind="primary" pending={pending}>
          Publish
        </Button>
      </form>
      <Alert error={error} />
      {result ? (
        <div>
          <Notice>
            Made {result.items.length} {result.items.length === 1 ? "slot" : "slots"}; skipped {result.skipped} (already there, overlapping, or
            started){result.unused_minutes ? `; ${result.unused_minutes} minutes at the end were too short for a slot` : ""}.
          </Notice>
          {result.items.length ? (
            <ul class="made">
              {result.items.map((s) => (
                <li key={s.id}>
                  {time(s.start_time)}–{time(s.end_time)}
                </li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
    </section>
  );
}
