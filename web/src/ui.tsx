// Shared pieces: the hash router, the busy indicator, messages, actions, data caches.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { all, ApiError, call, onBusy, type Appointment, type Doctor, type Patient } from "./api";

export interface Route {
  path: string;
  params: URLSearchParams;
}

function parseHash(): Route {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query ?? "") };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const f = () => setRoute(parseHash());
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return route;
}

export function href(path: string, params: Record<string, string | null | undefined> = {}): string {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v) as [string, string][]).toString();
  return `#${path}${q ? `?${q}` : ""}`;
}

export function go(path: string, params: Record<string, string | null | undefined> = {}): void {
  location.hash = href(path, params);
}

/** Shows "Working…" when any request has taken longer than a blink (150 ms). */
export function BusyIndicator() {
  const [show, setShow] = useState(false);
  useEffect(() => {
    let timer: number | undefined;
    return onBusy((busy) => {
      clearTimeout(timer);
      if (busy) timer = setTimeout(() => setShow(true), 150) as unknown as number;
      else setShow(false);
    });
  }, []);
  return (
    <div class={show ? "busy on" : "busy"} role="status" aria-live="polite">
      {show ? (
        <>
          <span class="spinner" aria-hidden="true" /> Working…
        </>
      ) : null}
    </div>
  );
}

export function Alert({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof Error ? error.message : String(error);
  return (
    <p class="alert" role="alert">
      {text}
    </p>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <p class="notice" role="status">
      {children}
    </p>
  );
}

/** A page: its title is focused on arrival, so screen readers and keyboards start there. */
export function Page({ title, children }: { title: string; children: ComponentChildren }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Clinic`;
    heading.current?.focus();
  }, [title]);
  return (
    <>
      <h1 tabIndex={-1} ref={heading}>
        {title}
      </h1>
      {children}
    </>
  );
}

/** Runs one user action at a time: pending while it runs, its error kept to show. */
export function useAction<A extends unknown[]>(
  run: (...args: A) => Promise<void>,
): [(...args: A) => Promise<void>, boolean, unknown, (e: unknown) => void] {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const act = async (...args: A) => {
    if (pending) return;
    setPending(true);
    setError(null);
    try {
      await run(...args);
    } catch (e) {
      setError(e);
    } finally {
      setPending(false);
    }
  };
  return [act, pending, error, setError];
}

/** Loads data for the given keys; reload() fetches again. */
export function useLoad<T>(load: () => Promise<T>, keys: unknown[]): [T | undefined, unknown, () => void] {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setError(null);
    load().then(
      (d) => live && setData(d),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [...keys, n]);
  return [data, error, () => setN((x) => x + 1)];
}

// Doctors change rarely: one list per page load.
let doctors: Promise<Doctor[]> | null = null;
export function loadDoctors(fresh = false): Promise<Doctor[]> {
  if (!doctors || fresh) doctors = all<"listDoctors", Doctor>("listDoctors", { query: { page_size: 100 } });
  doctors.catch(() => (doctors = null));
  return doctors;
}

const patients = new Map<string, Promise<Patient>>();
export function loadPatient(id: string): Promise<Patient> {
  let p = patients.get(id);
  if (!p) {
    patients.set(id, (p = call("getPatient", { path: { patient_id: id } })));
    p.catch(() => patients.delete(id));
  }
  return p;
}

export function isApiError(e: unknown, type: string): boolean {
  return e instanceof ApiError && e.type.endsWith(type);
}

// Partial: a status the API added after this app was built shows as it is (see Card).
export const STATUS: Partial<Record<Appointment["status"], string>> = {
  BOOKED: "Booked",
  CANCELLED: "Cancelled",
  COMPLETED: "Completed",
  NO_SHOW: "No-show",
};

export function Button(props: {
  onClick?: () => void;
  pending?: boolean;
  children: ComponentChildren;
  kind?: "primary" | "danger" | "plain";
  type?: "button" | "submit";
  label?: string;
}) {
  return (
    <button
      type={props.type ?? "button"}
      class={`btn ${props.kind ?? "plain"}`}
      onClick={props.onClick}
      disabled={props.pending}
      aria-busy={props.pending ? "true" : undefined}
      aria-label={props.label}
    >
      {props.children}
    </button>
  );
}
