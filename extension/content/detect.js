/* Phone numbers in text: pure functions over strings, no DOM.
 *
 * Loaded as a content script right after vendor/libphonenumber-max.js (which defines the global
 * `libphonenumber`), and imported by the service worker for tel: links and selections. It must
 * stay loadable in a plain JavaScript context: nothing here touches `document` or `chrome`.
 *
 * libphonenumber-js finds candidates that are valid numbers for the country; on their own they
 * include dates ("2024-11-25" is a valid Israeli number), version ranges, parts of longer digit
 * runs (card numbers, IP addresses, prices) and numbers labelled as orders or invoices. The rules
 * below drop those from the text around and inside each candidate.
 */

// Separators that glue a candidate to more digits: "2024-11-25/2024-12-01", "192.168.1.10".
const CALLPOP_GLUE = /[-./,:\u2010-\u2015\u2212]/;
const CALLPOP_CURRENCY_BEFORE = /(?:[$€£₪¥¢]|\b(?:USD|EUR|GBP|ILS|NIS|CHF|JPY|CAD|AUD|Rs\.?)|ש["״]ח)\s*$/i;
const CALLPOP_CURRENCY_AFTER =
  /^\s*(?:[$€£₪¥¢%‰]|(?:USD|EUR|GBP|ILS|NIS|CHF|JPY|CAD|AUD|dollars?|euros?|pounds?|shekels?|ש["״]?ח)(?![\p{L}\p{N}]))/iu;
// Words that label what follows as an identifier, not a phone number.
const CALLPOP_ID_LABEL = new RegExp(
  "(?:^|[^\\p{L}\\p{N}])(?:order|invoice|inv|receipt|ref|reference|tracking|shipment|parcel|sku|item|" +
    "product|part|serial|s/n|account|acct|iban|policy|ticket|case|claim|booking|reservation|confirmation|" +
    "transaction|txn|po|(?<!caller\\s?)id|isbn|ean|upc|vat|tax|licen[cs]e|member(?:ship)?|passport|" +
    "הזמנה|חשבונית|קבלה|אסמכתא|אסמכתה|ת\\.?ז|ת[\"״]ז|תעודת זהות|לקוח|חשבון|עסקה|פוליסה)" +
    "\\s*(?:(?:no|nr|num|number|id|code|מס['׳]?|מספר)\\.?\\s*)?[:#.\\-\\s]*$",
  "iu"
);
// Words that label an identifier only with "number", "no." or "ID" after them ("Customer no.").
const CALLPOP_ID_LABEL_NUMBERED =
  /(?:^|[^\p{L}\p{N}])(?:customer|client|user|member|employee|student|patient|contract|file|record|unit|model)\s*(?:no|nr|num|number|id|#)\.?[:#.\-\s]*$/iu;
const CALLPOP_VERSION_LABEL = /(?:^|[^\p{L}])(?:v|ver|version|versions|release|build|rev|revision|firmware|גרסה|גרסאות)\.?\s*$/iu;

function callpopLib() {
  // The UMD bundle puts itself on the global object of whatever context loaded it.
  const lib = typeof libphonenumber !== "undefined" ? libphonenumber : globalThis.libphonenumber;
  if (!lib) throw new Error("libphonenumber-js is not loaded (vendor/libphonenumber-max.js comes first)");
  return lib;
}

function callpopCountry(defaultCountry) {
  const country = String(defaultCountry || "").toUpperCase();
  return callpopLib().isSupportedCountry(country) ? country : undefined;
}

function callpopIsDigit(ch) {
  return ch >= "0" && ch <= "9";
}

function callpopPlausibleDate(a, b, c) {
  // a-b-c as year-month-day or day-month-year or month-day-year.
  const [x, y, z] = [a, b, c].map(Number);
  const ymd = a.length === 4 && y >= 1 && y <= 12 && z >= 1 && z <= 31;
  const dmy = c.length >= 2 && ((x >= 1 && x <= 31 && y >= 1 && y <= 12) || (x >= 1 && x <= 12 && y >= 1 && y <= 31));
  return a.length === 4 ? ymd : dmy;
}

/* Why a candidate is not a phone number, or "" when it is one. */
function callpopRejection(text, start, end, number) {
  const raw = text.slice(start, end);
  const before = text.slice(Math.max(0, start - 40), start);
  const after = text.slice(end, end + 20);
  const b1 = before.slice(-1);
  const b2 = before.slice(-2, -1);
  const a1 = after.slice(0, 1);
  const a2 = after.slice(1, 2);
  const digits = raw.replace(/\D/g, "");
  const hasPlus = /^\s*\+/.test(raw) || /\+\s*$/.test(before);

  // Part of a longer run of digits or letters: card numbers, IP addresses, IDs, date ranges.
  if (callpopIsDigit(b1) || callpopIsDigit(a1)) return "glued to more digits";
  if (CALLPOP_GLUE.test(b1) && callpopIsDigit(b2)) return "glued to more digits";
  if (CALLPOP_GLUE.test(a1) && callpopIsDigit(a2)) return "glued to more digits";
  if (/[\p{L}_@#&]/u.test(b1) || /[\p{L}_@&]/u.test(a1)) return "inside a word or code";
  if (/#\s?$/.test(before)) return "labelled with #";
  if (/[A-Za-z][-_/]$/.test(before)) return "part of a code (ABC-...)";

  // Dates and years: 2024-11-25, 25.11.2024, 11/25/2024, 2024-2025, 20241125.
  const date = /^(\d{1,4})\s?([-./])\s?(\d{1,2})\s?\2\s?(\d{2,4})$/.exec(raw);
  if (date && callpopPlausibleDate(date[1], date[3], date[4])) return "a date";
  if (/^(?:19|20)\d\d\s*[-–/]\s*(?:19|20)\d\d$/.test(raw)) return "a range of years";
  if (/^\d{8}$/.test(raw) && (/^(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$/.test(raw) ||
      /^(?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])(?:19|20)\d\d$/.test(raw))) return "a date";

  // Versions, IP addresses and decimals: dots mixed with other separators, or 1-digit groups.
  if (/\d\.\d/.test(raw)) {
    if (/\d[-/]\d/.test(raw)) return "a version or address (mixed separators)";
    if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(raw) && raw.split(".").every((g) => Number(g) <= 255)) return "an IP address";
    if (/^\d{1,2}(?:\.\d{3}){2,}$/.test(raw)) return "an amount (dots between thousands)";
    const dotted = raw.split(".").map((g) => g.replace(/\D/g, ""));
    if (!hasPlus && dotted.slice(1).some((g) => g.length < 2)) return "a version number";
  }
  if (CALLPOP_VERSION_LABEL.test(before)) return "labelled as a version";

  // Prices and amounts: currency next to it, or thousands grouped with commas.
  if (/\d,\d{3}(?!\d)/.test(raw)) return "an amount";
  if (CALLPOP_CURRENCY_BEFORE.test(before) || CALLPOP_CURRENCY_AFTER.test(after)) return "a price";

  // Labelled identifiers: "Order no. 0722776772", "Invoice: 03-1234567", "ת.ז. 031234567".
  if (CALLPOP_ID_LABEL.test(before) || CALLPOP_ID_LABEL_NUMBERED.test(before)) return "labelled as an identifier";

  // Card numbers (13-19 digits, Luhn) and US ZIP+4 postal codes.
  if (!hasPlus && /^(?:\d[ -]?){12,18}\d$/.test(raw) && callpopLuhn(digits)) return "a card number";
  if (/^\d{5}-\d{4}$/.test(raw)) return "a ZIP+4 postal code";

  // Written without the trunk prefix its country always uses ("20241125" read as 02-411-2125):
  // people write their numbers with it, so such a match is some other figure.
  if (!hasPlus && !/^\s*(?:\(?0|00|011)/.test(raw)) {
    const national = number.formatNational();
    const cc = String(number.countryCallingCode);
    if (/^\(?0/.test(national) && !digits.startsWith(cc)) return "missing the trunk prefix";
  }
  return "";
}

function callpopLuhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/* Candidates libphonenumber-js finds, each with the reason it was dropped ("" = kept). */
function explainPhoneNumbers(text, defaultCountry) {
  if (typeof text !== "string" || !text) return [];
  const lib = callpopLib();
  const country = callpopCountry(defaultCountry);
  const out = [];
  // One list item at a time: findNumbers reads "03-1234567, 03-7654321" as one number with
  // extension 03. (Dashes and slashes between numbers it handles itself; "03 - 1234567" is one.)
  const boundary = /[,;|\n\r\t]/g;
  let from = 0;
  for (const cut of [...text.matchAll(boundary), { index: text.length, 0: "" }]) {
    const segment = text.slice(from, cut.index);
    const enoughDigits = /(?:\d\D*){6}/.test(segment); // no phone number has fewer than 6 digits
    for (const m of enoughDigits ? lib.findNumbers(segment, country, { v2: true }) : []) {
      let [start, end] = [from + m.startsAt, from + m.endsAt];
      // Spans come with stray spaces and unbalanced brackets: "(052-765-4321" of "(052-765-4321)".
      while (start < end && /\s/.test(text[start])) start++;
      while (end > start && /\s/.test(text[end - 1])) end--;
      const span = text.slice(start, end);
      const opens = (span.match(/\(/g) || []).length;
      const closes = (span.match(/\)/g) || []).length;
      if (opens > closes && span[0] === "(") start++;
      if (closes > opens && span[span.length - 1] === ")") end--;
      out.push({
        start,
        end,
        e164: m.number.number,
        text: text.slice(start, end),
        rejected: callpopRejection(text, start, end, m.number),
      });
    }
    from = cut.index + cut[0].length;
  }
  return out;
}

/* The phone numbers in `text`: [{start, end, e164}], offsets in UTF-16 code units, end exclusive. */
function findPhoneNumbers(text, defaultCountry) {
  return explainPhoneNumbers(text, defaultCountry)
    .filter((c) => !c.rejected)
    .map(({ start, end, e164 }) => ({ start, end, e164 }));
}

/* The number a selection consists of (labels and punctuation around it allowed), else null. */
function numberInSelection(text, defaultCountry) {
  if (typeof text !== "string" || text.length > 200) return null;
  const found = findPhoneNumbers(text, defaultCountry);
  if (found.length !== 1) return null;
  const rest = text.slice(0, found[0].start) + " " + text.slice(found[0].end);
  // Anything else with digits in it means the selection is more than one number.
  return /\d/.test(rest) ? null : found[0].e164;
}

/* The number of a tel: or callto: link (RFC 3966; callto: as Skype wrote it), else null. */
function numberFromTelUrl(href, defaultCountry) {
  if (typeof href !== "string") return null;
  const m = /^\s*(tel|callto):(?:\/\/)?(.*)$/i.exec(href);
  if (!m) return null;
  let body;
  try {
    body = decodeURIComponent(m[2]);
  } catch {
    body = m[2];
  }
  body = body.split(";")[0].split("?")[0].trim();
  if (!/\d/.test(body)) return null;
  const lib = callpopLib();
  const parsed = lib.parsePhoneNumberFromString(body, callpopCountry(defaultCountry));
  return parsed && parsed.isValid() ? parsed.number : null;
}

/* A number formatted for people: national for the agent's own country, international else. */
function formatForPeople(e164, defaultCountry) {
  const lib = callpopLib();
  const parsed = typeof e164 === "string" ? lib.parsePhoneNumberFromString(e164) : undefined;
  if (!parsed) return String(e164 || "");
  const country = callpopCountry(defaultCountry);
  const home = country && String(lib.getCountryCallingCode(country)) === String(parsed.countryCallingCode);
  return home ? parsed.formatNational() : parsed.formatInternational();
}

// Module loaders (the service worker imports this file) see the same names.
globalThis.findPhoneNumbers = findPhoneNumbers;
globalThis.callpopPhone = { findPhoneNumbers, explainPhoneNumbers, numberInSelection, numberFromTelUrl, formatForPeople };
