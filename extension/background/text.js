/* Text from the hub (caller names, companies, numbers) made safe to show in a notification. */

/* Drops Unicode format characters (Cf: bidi overrides and isolates, zero-width spaces and joiners,
 * soft hyphens), which can make "Bank of X" read as something else or hide what is there, and
 * turns control characters (Cc: newlines, tabs...) into a space, so that a name cannot add lines
 * to a bubble whose lines we compose ourselves. Anything not a string or number is "". */
export function displayText(value) {
  if (typeof value !== "string" && typeof value !== "number") return "";
  return String(value).replace(/\p{Cf}+/gu, "").replace(/[\p{Cc}\s]+/gu, " ").trim();
}
