// Dates and times in the browser's own zone (the patient's), and in a doctor's zone.

export const myZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** YYYY-MM-DD of a local date. */
export function isoDate(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

export function parseDate(text: string | null | undefined): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text ?? "");
  return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
}

export function addDays(d: Date, days: number): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + days);
}

/** The Monday that starts the local week of d. */
export function weekStart(d: Date): Date {
  return addDays(d, -((d.getDay() + 6) % 7));
}

const cache = new Map<string, Intl.DateTimeFormat>();
function fmt(options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = JSON.stringify(options);
  let f = cache.get(key);
  if (!f) cache.set(key, (f = new Intl.DateTimeFormat(undefined, options)));
  return f;
}

export function time(instant: string | Date, timeZone?: string): string {
  return fmt({ hour: "2-digit", minute: "2-digit", timeZone }).format(new Date(instant));
}

export function day(d: string | Date, timeZone?: string): string {
  return fmt({ weekday: "long", day: "numeric", month: "long", timeZone }).format(new Date(d));
}

export function shortDay(d: string | Date): string {
  return fmt({ weekday: "short", day: "numeric", month: "short" }).format(new Date(d));
}

export function when(start: string, end?: string): string {
  return `${fmt({ weekday: "short", day: "numeric", month: "short", year: "numeric" }).format(new Date(start))}, ${time(start)}${
    end ? `–${time(end)}` : ""
  }`;
}

/** "New York" from "America/New_York". */
export function city(zone: string): string {
  return zone.split("/").pop()!.replace(/_/g, " ");
}
