// The app: sign-in, then the pages of the signed-in role, on hash routes (#/book, #/doctor...).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { AppointmentPage, MyAppointments, type Role } from "./appointments";
import { claims, loadConfig, myId, onSessionChange, signIn, signOut, type Claims } from "./auth";
import { Book } from "./book";
import { Desk } from "./desk";
import { DoctorPage } from "./doctor";
import { Alert, BusyIndicator, Button, go, href, Page, useAction, useRoute, type Route } from "./ui";

const HOME: Record<Role, string> = { patient: "/book", doctor: "/doctor", admin: "/desk" };
const NAV: Record<Role, [string, string][]> = {
  patient: [
    ["/book", "Book"],
    ["/appointments", "My appointments"],
  ],
  doctor: [["/doctor", "My schedule"]],
  admin: [
    ["/desk", "Front desk"],
    ["/book", "Book"],
  ],
};

function SignIn({ next }: { next: string }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [submit, pending, error] = useAction(async () => {
    await signIn(email.trim(), password);
    location.hash = next && next !== "/signin" ? `#${next}` : "#/";
  });
  return (
    <Page title="Sign in">
      {next.startsWith("/appointments/") ? <p>Sign in to see your appointment.</p> : null}
      <form
        class="narrow"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <label>
          Email
          <input type="email" autoComplete="username" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <Button type="submit" kind="primary" pending={pending}>
          Sign in
        </Button>
      </form>
      <Alert error={error} />
    </Page>
  );
}

function NotFound() {
  return (
    <Page title="Page not found">
      <p>
        <a href="#/">Go to the start page</a>
      </p>
    </Page>
  );
}

function Pages({ route, who, me }: { route: Route; who: Claims; me: string }) {
  const role: Role = who.role ?? "patient";
  const path = route.path;
  const appointment = /^\/appointments\/([0-9a-fA-F-]{36})$/.exec(path);
  if (path === "/" || path === "/signin") {
    go(HOME[role]);
    return null;
  }
  if (appointment) return <AppointmentPage id={appointment[1]} role={role} route={route} />;
  // A doctor books nothing but may move their patients' appointments.
  if (path === "/book" && (role !== "doctor" || route.params.get("move"))) return <Book route={route} role={role} />;
  if (path === "/appointments" && role === "patient") return <MyAppointments role={role} />;
  if (path === "/doctor" && role === "doctor") return <DoctorPage route={route} me={me} role={role} />;
  if (path === "/desk" && role === "admin") return <Desk route={route} />;
  return <NotFound />;
}

function App() {
  const route = useRoute();
  const [who, setWho] = useState(claims);
  const [me, setMe] = useState<string | null>(null);
  const [configError, setConfigError] = useState<unknown>(null);
  useEffect(() => onSessionChange(() => setWho(claims())), []);
  useEffect(() => {
    loadConfig().catch(setConfigError);
  }, []);
  useEffect(() => {
    setMe(null);
    if (who) myId(who).then(setMe);
  }, [who?.sub]);
  // Signed out (or the session ended): sign in, then come back here.
  useEffect(() => {
    if (!who && route.path !== "/signin") go("/signin", { next: route.path === "/" ? null : route.path + (route.params.size ? `?${route.params}` : "") });
  }, [who, route.path]);
  const role: Role = who?.role ?? "patient";
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          Clinic
        </a>
        {who ? (
          <nav aria-label="Main">
            <ul>
              {NAV[role].map(([to, label]) => (
                <li key={to}>
                  <a href={href(to)} aria-current={route.path === to ? "page" : undefined}>
                    {label}
                  </a>
                </li>
              ))}
              <li>
                <button type="button" class="link" onClick={() => signOut()}>
                  Sign out
                </button>
              </li>
            </ul>
          </nav>
        ) : null}
      </header>
      <BusyIndicator />
      <main id="main" tabIndex={-1}>
        <Alert error={configError} />
        {!who ? <SignIn next={route.params.get("next") ?? "/"} /> : me ? <Pages route={route} who={who} me={me} /> : null}
      </main>
      {who ? (
        <footer class="muted">
          Signed in as {who.name ?? who.email} ({role})
        </footer>
      ) : null}
    </>
  );
}

render(<App />, document.getElementById("app")!);
