/* The note page of one call (notes/notes.html?call=<id>): the shell around background/notes.js. */

import { loadNotes, saveNote } from "../background/notes.js";
import { loadSettings } from "../background/storage.js";

const $ = (id) => document.getElementById(id);
const callId = new URLSearchParams(location.search).get("call") || "";

async function start() {
  const { hubUrl, token } = await loadSettings();
  if (!callId || !token) {
    $("caller").textContent = !callId ? "No call given." : "Sign in first (the extension's options).";
    return;
  }
  const got = await loadNotes(hubUrl, token, callId);
  if (!got.ok) {
    $("caller").textContent = got.text;
    return;
  }
  const { call } = got;
  const last = call.notes[call.notes.length - 1] || {};
  $("caller").textContent = `Call ${callId} (${call.status})`;
  for (const d of call.dispositions) $("disposition").append(new Option(d, d, false, d === last.disposition));
  $("notes").value = last.notes || "";
  $("form").hidden = false;
  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("save").disabled = true;
    const saved = await saveNote(hubUrl, token, callId, { disposition: $("disposition").value, notes: $("notes").value });
    $("result").textContent = saved.text;
    $("save").disabled = false;
  });
}

start();
