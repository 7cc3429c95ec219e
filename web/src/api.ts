// The typed client: every call names an operation of the OpenAPI document (api.gen.ts), so
// its path, parameters, body and answer are checked against the API at build time.
import { OPERATIONS, type Operations, type Problem } from "./api.gen";
import { idToken, signOut } from "./auth";

export * from "./api.gen";

type Op = keyof Operations;
type Args<K extends Op> = {
  path?: Operations[K]["path"];
  query?: Operations[K]["query"];
  body?: Operations[K]["body"];
};

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problem: Problem | null = null,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
  get type(): string {
    return this.problem?.type ?? "";
  }
}

// In-flight requests, for the busy indicator.
let inFlight = 0;
const busyListeners = new Set<(busy: boolean) => void>();
export function onBusy(f: (busy: boolean) => void): () => void {
  busyListeners.add(f);
  return () => busyListeners.delete(f);
}
function setBusy(delta: number): void {
  inFlight += delta;
  busyListeners.forEach((f) => f(inFlight > 0));
}

// A change sent again after a failure that left its outcome unknown (no answer, a 5xx)
// carries the same Idempotency-Key, so the server makes it at most once. A definite
// answer (2xx, 4xx) ends the attempt: the next identical request is a new one.
// Kept in sessionStorage, so a reload after a dropped connection still sends the same key.
const KEYS = "clinic.pending-keys";
const pendingKeys = new Map<string, string>(JSON.parse(sessionStorage.getItem(KEYS) || "[]"));
function keepKeys(): void {
  sessionStorage.setItem(KEYS, JSON.stringify([...pendingKeys].slice(-20)));
}

function waitText(seconds: number): string {
  if (seconds < 90) return `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? "a minute" : `${minutes} minutes`;
}

/** The words shown for a problem: plain language first, the API's detail after. */
function explain(status: number, problem: Problem | null, retryAfter: number | null): string {
  const type = problem?.type ?? "";
  const detail = problem?.detail ? ` (${problem.detail})` : "";
  if (type.endsWith("/slot-taken")) return "Sorry, that time was just taken by someone else. Please choose another time.";
  if (type.endsWith("/slot-held")) return "Sorry, that time is held for a patient on the waitlist. Please choose another time.";
  if (type.endsWith("/offer-ended"))
    return "Sorry, this offer has ended: the time was held for you only for a while. Reload the page to see any other time offered to you.";
  if (type.endsWith("/already-booked-in-range"))
    return `You already have an appointment with this doctor in these days: there is nothing to wait for. Cancel it first, or choose other days.${detail}`;
  if (type.endsWith("/too-many-waitlist-entries")) return `You are already on as many waitlists as you can be. Leave one to join another.${detail}`;
  if (type.endsWith("/too-many-changes"))
    return `You have made many changes in the last hour. Please try again in ${waitText(retryAfter ?? 60)}.`;
  if (type.endsWith("/too-many-upcoming"))
    return `You already have the most upcoming appointments you can book yourself. Cancel one, or call the clinic.${detail}`;
  if (type.endsWith("/overlapping-appointment")) return "You already have an appointment at that time.";
  if (type.endsWith("/transition-not-allowed")) return `This change is not possible now${detail}.`;
  if (status === 401) return "Please sign in again.";
  if (status === 403) return `You are not allowed to do this${detail}.`;
  if (status === 404) return `Not found: it may have been removed, or it is not yours${detail}.`;
  if (status === 422 || status === 400) {
    const fields = (problem?.errors ?? [])
      .map((e) => [String((e as { loc?: unknown[] }).loc?.slice(-1)[0] ?? ""), String((e as { msg?: string }).msg ?? "")])
      .map(([field, msg]) => (field ? `${field}: ${msg}` : msg));
    return `Please check your entry: ${fields.length ? fields.join("; ") : problem?.detail ?? "it was not accepted"}.`;
  }
  if (status === 503 || status === 502 || status === 504)
    return `The clinic is busy right now. Please try again${retryAfter ? ` in ${waitText(retryAfter)}` : ""}.`;
  return problem?.title ? `${problem.title}${detail}` : `Something went wrong (${status}). Please try again.`;
}

export async function call<K extends Op>(op: K, args: Args<K> = {}): Promise<Operations[K]["response"]> {
  const [method, template] = OPERATIONS[op];
  const params = (args.path ?? {}) as Record<string, string>;
  let url = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name]));
  const query = Object.entries((args.query ?? {}) as Record<string, unknown>).filter(([, v]) => v !== undefined && v !== "");
  if (query.length) url += "?" + new URLSearchParams(query.map(([k, v]) => [k, String(v)])).toString();
  const headers: Record<string, string> = { Accept: "application/json" };
  const body = args.body === undefined ? undefined : JSON.stringify(args.body);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const attempt = `${method} ${url} ${body ?? ""}`;
  if (method === "POST" || method === "PATCH") {
    let key = pendingKeys.get(attempt);
    if (!key) pendingKeys.set(attempt, (key = crypto.randomUUID()));
    keepKeys();
    headers["Idempotency-Key"] = key;
  }
  setBusy(1);
  try {
    const token = await idToken().catch(() => null);
    if (token) headers.Authorization = `Bearer ${token}`;
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body });
    } catch {
      throw new ApiError("We could not reach the clinic. Check your connection and try again.", 0);
    }
    if (response.ok || (response.status >= 400 && response.status < 500)) {
      pendingKeys.delete(attempt);
      keepKeys();
    }
    if (response.ok) return (await response.json()) as Operations[K]["response"];
    let problem: Problem | null = null;
    try {
      problem = (await response.json()) as Problem;
    } catch {
      // not JSON (a proxy's page): the status says enough
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    if (response.status === 401) signOut();
    throw new ApiError(explain(response.status, problem, retryAfter), response.status, problem, retryAfter);
  } finally {
    setBusy(-1);
  }
}

/** Every page of a list (bounded, so a runaway list cannot hang the page). */
export async function all<K extends Op, T>(
  op: K,
  args: Args<K>,
  pages = 10,
): Promise<T[]> {
  const items: T[] = [];
  let token: string | null = null;
  for (let i = 0; i < pages; i++) {
    const query = { ...(args.query ?? {}), ...(token ? { page_token: token } : {}) } as Operations[K]["query"];
    const page = (await call(op, { ...args, query })) as unknown as { items: T[]; next_page_token: string | null };
    items.push(...page.items);
    token = page.next_page_token;
    if (!token) break;
  }
  return items;
}
