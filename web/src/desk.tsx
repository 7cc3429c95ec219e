// The front desk (admin): find a patient, see and change their appointments, book for them;
// add a doctor.
import { useState } from "preact/hooks";
import { all, call, type Appointment, type Doctor } from "./api";
import { List, split } from "./appointments";
import { Alert, Button, go, href, loadDoctors, loadPatient, Notice, Page, useAction, useLoad, type Route } from "./ui";

export function Desk({ route }: { route: Route }) {
  const q = route.params.get("q") ?? "";
  const patientId = route.params.get("patient");
  const [text, setText] = useState(q);
  const [found, findError] = useLoad(() => (q ? call("findPatients", { query: { q, page_size: 20 } }) : Promise.resolve(null)), [q]);
  return (
    <Page title="Front desk">
      <section aria-labelledby="find">
        <h2 id="find">Find a patient</h2>
        <form
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            go("/desk", { q: text.trim() });
          }}
        >
          <label>
            Name or email
            <input type="search" value={text} maxLength={100} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
          </label>
          <Button type="submit" kind="primary">
            Find
          </Button>
        </form>
        <Alert error={findError} />
        {found ? (
          found.items.length ? (
            <ul class="results">
              {found.items.map((p) => (
                <li key={p.id}>
                  <a href={href("/desk", { q, patient: p.id })} aria-current={p.id === patientId ? "true" : undefined}>
                    {p.name}
                  </a>{" "}
                  <span class="muted">{p.email}</span>
                </li>
              ))}
            </ul>
          ) : (
            <p>No patient matches “{q}”.</p>
          )
        ) : null}
      </section>
      {patientId ? <PatientAppointments patientId={patientId} /> : null}
      <AddDoctor />
    </Page>
  );
}

function PatientAppointments({ patientId }: { patientId: string }) {
  const [patient, patientError] = useLoad(() => loadPatient(patientId), [patientId]);
  const [items, error, reload] = useLoad(
    () => all<"listAppointments", Appointment>("listAppointments", { query: { patient_id: patientId, page_size: 100 } }),
    [patientId],
  );
  const [upcoming, past] = split(items ?? []);
  return (
    <section aria-labelledby="patient">
      <h2 id="patient">{patient ? `${patient.name}` : "Patient"}</h2>
      <Alert error={patientError || error} />
      {patient ? (
        <p>
          {patient.email}
          {patient.phone ? ` · ${patient.phone}` : ""}
        </p>
      ) : null}
      <p>
        <a class="btn primary" href={href("/book", { patient: patientId })}>
          Book for {patient?.name ?? "this patient"}
        </a>
      </p>
      {items ? (
        <>
          <h3>Upcoming</h3>
          <List items={upcoming} role="admin" empty="No upcoming appointments." onChange={reload} headingLevel={4} />
          <h3>Past and cancelled</h3>
          <List items={past} role="admin" empty="None." onChange={reload} headingLevel={4} />
        </>
      ) : null}
    </section>
  );
}

const ZONES: string[] = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? ["UTC"];

function AddDoctor() {
  const empty = { name: "", email: "", specialty: "", timezone: Intl.DateTimeFormat().resolvedOptions().timeZone };
  const [form, setForm] = useState(empty);
  const [made, setMade] = useState<{ doctor: Doctor; email: string } | null>(null);
  const [add, pending, error] = useAction(async () => {
    setMade(null);
    const doctor = await call("createDoctor", { body: { ...form, name: form.name.trim(), specialty: form.specialty.trim() } });
    setMade({ doctor, email: form.email });
    setForm(empty);
    loadDoctors(true);
  });
  const field = (name: keyof typeof form) => ({
    value: form[name],
    onInput: (e: Event) => setForm({ ...form, [name]: (e.target as HTMLInputElement).value }),
    required: true,
  });
  return (
    <section aria-labelledby="add-doctor">
      <h2 id="add-doctor">Add a doctor</h2>
      <form
        class="grid-form"
        onSubmit={(e) => {
          e.preventDefault();
          add();
        }}
      >
        <label>
          Name
          <input type="text" maxLength={200} autoComplete="off" {...field("name")} />
        </label>
        <label>
          Email
          <input type="email" autoComplete="off" {...field("email")} />
        </label>
        <label>
          Specialty
          <input type="text" maxLength={100} {...field("specialty")} />
        </label>
        <label>
          Time zone
          <select value={form.timezone} onChange={(e) => setForm({ ...form, timezone: (e.target as HTMLSelectElement).value })}>
            {ZONES.map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        </label>
        <Button type="submit" kind="primary" pending={pending}>
          Add doctor
        </Button>
      </form>
      <Alert error={error} />
      {made ? (
        <Notice>
          {made.doctor.name} ({made.doctor.specialty}, {made.doctor.timezone}) was added. They sign in as {made.email} once the
          clinic's sign-in has an account for that address.
        </Notice>
      ) : null}
    </section>
  );
}
