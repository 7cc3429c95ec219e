// Sign-in over the Identity Toolkit REST API: the same code for the Firebase Auth emulator
// (local) and Identity Platform (production); only /config.json differs.

export interface AuthConfig {
  apiKey: string;
  identityToolkitUrl: string;
  secureTokenUrl: string;
}

export interface Claims {
  sub: string;
  email: string;
  name?: string;
  role?: "patient" | "doctor" | "admin";
  iss?: string;
  exp: number;
}

interface Session {
  idToken: string;
  refreshToken: string;
  expiresAt: number; // ms since the epoch
}

const KEY = "clinic.session";
let config: AuthConfig | null = null;
let session: Session | null = read();
const listeners = new Set<() => void>();

function read(): Session | null {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "null") as Session | null;
  } catch {
    return null;
  }
}

function save(next: Session | null): void {
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  listeners.forEach((f) => f());
}

export function onSessionChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

export async function loadConfig(): Promise<AuthConfig> {
  if (config) return config;
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error("The app's configuration could not be loaded.");
  config = ((await response.json()) as { auth: AuthConfig }).auth;
  return config;
}

// Identity Toolkit's error codes, in words a patient understands.
const SIGN_IN_ERRORS: Record<string, string> = {
  INVALID_LOGIN_CREDENTIALS: "Wrong email or password.",
  EMAIL_NOT_FOUND: "Wrong email or password.",
  INVALID_PASSWORD: "Wrong email or password.",
  INVALID_EMAIL: "That does not look like an email address.",
  USER_DISABLED: "This account is disabled. Please contact the clinic.",
  MISSING_PASSWORD: "Enter your password.",
};

async function post(url: string, body: string, type: string): Promise<Record<string, string>> {
  let response: Response;
  try {
    response = await fetch(url, { method: "POST", headers: { "Content-Type": type }, body });
  } catch {
    throw new Error("We could not reach the sign-in service. Check your connection and try again.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = String(data?.error?.message ?? "").split(" ")[0];
    if (code.startsWith("TOO_MANY_ATTEMPTS")) throw new Error("Too many attempts. Please wait a little and try again.");
    throw new Error(SIGN_IN_ERRORS[code] ?? "Sign-in failed. Please try again.");
  }
  return data;
}

export async function signIn(email: string, password: string): Promise<void> {
  const c = await loadConfig();
  const data = await post(
    `${c.identityToolkitUrl}/v1/accounts:signInWithPassword?key=${encodeURIComponent(c.apiKey)}`,
    JSON.stringify({ email, password, returnSecureToken: true }),
    "application/json",
  );
  save({ idToken: data.idToken, refreshToken: data.refreshToken, expiresAt: Date.now() + Number(data.expiresIn) * 1000 });
}

export function signOut(): void {
  save(null);
}

let refreshing: Promise<void> | null = null;

async function refresh(): Promise<void> {
  const c = await loadConfig();
  const current = session;
  if (!current) return;
  try {
    const data = await post(
      `${c.secureTokenUrl}/v1/token?key=${encodeURIComponent(c.apiKey)}`,
      new URLSearchParams({ grant_type: "refresh_token", refresh_token: current.refreshToken }).toString(),
      "application/x-www-form-urlencoded",
    );
    save({ idToken: data.id_token, refreshToken: data.refresh_token, expiresAt: Date.now() + Number(data.expires_in) * 1000 });
  } catch (error) {
    // A refresh token that was revoked: sign in again. A network failure: keep the session.
    if (!(error instanceof Error) || !error.message.startsWith("We could not reach")) save(null);
    throw error;
  }
}

/** A current ID token (refreshed a minute before it expires), or null when signed out. */
export async function idToken(): Promise<string | null> {
  if (!session) return null;
  if (session.expiresAt - 60_000 < Date.now()) {
    refreshing ??= refresh().finally(() => (refreshing = null));
    await refreshing;
  }
  return session?.idToken ?? null;
}

export function claims(): Claims | null {
  if (!session) return null;
  try {
    const part = session.idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    return JSON.parse(text) as Claims;
  } catch {
    return null;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAMESPACE = "7f1f9a52-3b4c-4d1e-9a4a-2f6f4c1d8e10"; // shared/auth.py's, for non-uuid subjects

/** The id the API knows the signed-in user by (shared/auth.py subject_to_id). */
export async function myId(c: Claims): Promise<string> {
  if (UUID.test(c.sub)) return c.sub.toLowerCase();
  const ns = Uint8Array.from(NAMESPACE.replace(/-/g, "").match(/../g)!.map((h) => parseInt(h, 16)));
  const name = new TextEncoder().encode(`${c.iss ?? ""}|${c.sub}`);
  const data = new Uint8Array(ns.length + name.length);
  data.set(ns);
  data.set(name, ns.length);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-1", data)).slice(0, 16);
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
