// The edgeknn page: live view, prediction, classes with thumbnails, teaching, status.
// Plain JS served as is; every write goes to POST /api/cmd/<verb>, the MQTT verbs.
"use strict";

const state = { session: null, counts: {}, pending: new Set(), shown: {}, thumbsOf: {} };
const THUMBS_SHOWN = 24;
const $ = (sel, root = document) => root.querySelector(sel);

function say(text, isError = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = !text;
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  return response.json();
}

// One MQTT verb; resolves to the reply ({ok, error?, ...}).
async function command(verb, body, { image = null, query = "" } = {}) {
  const headers = {};
  if (state.session && state.session.csrf) headers["X-CSRF-Token"] = state.session.csrf;
  let payload;
  if (image) {
    headers["Content-Type"] = image.type || "application/octet-stream";
    payload = image;
  } else {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/api/cmd/${verb}${query}`, { method: "POST", headers, body: payload,
                                                             credentials: "same-origin" });
  const reply = await response.json();
  if (!reply.ok) say(`${verb}: ${reply.error}`, true);
  return reply;
}

// ----- session ---------------------------------------------------------------

async function loadSession() {
  state.session = await getJSON("/api/session");
  const s = state.session;
  document.body.classList.toggle("readonly", !s.can_write);
  $("#login").hidden = s.can_write || s.anonymous_writes;
  $("#logout").hidden = !s.logged_in;
  $("#who").textContent = s.logged_in ? "logged in" : s.anonymous_writes ? "open to everyone" : "";
  if (!s.can_write && !s.login_possible) {
    say("Read-only: no password is set. On the device run: sudo edgeknn web password");
  }
  return s;
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/login", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ password: $("#password").value }) });
  const reply = await response.json();
  $("#password").value = "";
  if (!reply.ok) { say(reply.error, true); return; }
  say("");
  const session = await loadSession();
  if (session.can_read) start();
  refreshAllThumbs();
});

$("#logout").addEventListener("click", async () => {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" });
  await loadSession();
});

// ----- live view and prediction ------------------------------------------------

function showLive(on) {
  // Frames are encoded only while someone watches: stop the stream when hidden.
  $("#live").src = on ? `/stream.mjpeg?t=${Date.now()}` : "";
}

function drawBoxes(detections) {
  // Boxes are in frame fractions (0..1), and the overlay covers exactly the image.
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  $("#boxes").replaceChildren(...(detections || []).map((d) => {
    const b = d.box, box = document.createElement("div"), tag = document.createElement("span");
    box.className = b.ymin < 0.06 ? "box low" : "box";
    Object.assign(box.style, { left: pct(b.xmin), top: pct(b.ymin), width: pct(b.xmax - b.xmin),
                               height: pct(b.ymax - b.ymin) });
    const knn = d.class && d.class.label ? ` (${d.class.label})` : "";
    tag.textContent = `${d.label} ${Math.round(d.score * 100)}%${knn}`;
    box.append(tag);
    return box;
  }));
}

function showPrediction(p) {
  const label = $("#prediction-label");
  label.textContent = p.label === null ? "nothing taught yet" : p.label;
  label.dataset.label = p.label === null ? "" : p.label;
  label.dataset.unknown = p.unknown ? "true" : "false";
  $("#prediction-state").textContent = p.label === null ? "" : p.unknown ? "unknown (below the threshold)"
    : `${Math.round(p.confidence * 100)}%`;
  const bars = $("#bars");
  const names = Object.keys(p.scores).sort();
  if (bars.dataset.names !== names.join("\n")) {
    bars.replaceChildren(...names.map((name) => {
      const row = document.createElement("div");
      row.className = "bar"; row.dataset.label = name;
      row.innerHTML = '<span class="name"></span><div class="track"><div class="fill"></div></div><span class="pct"></span>';
      $(".name", row).textContent = name;
      return row;
    }));
    bars.dataset.names = names.join("\n");
  }
  for (const row of bars.children) {
    const share = p.scores[row.dataset.label] || 0;
    $(".fill", row).style.width = `${(share * 100).toFixed(1)}%`;
    $(".pct", row).textContent = `${Math.round(share * 100)}%`;
    row.classList.toggle("top", !p.unknown && row.dataset.label === p.label);
  }
  drawBoxes(p.detections);
}

// ----- classes -----------------------------------------------------------------

function cardOf(label) {
  return [...document.querySelectorAll("#classes .card")].find((c) => c.dataset.label === label);
}

function makeCard(label) {
  const card = $("#class-card").content.firstElementChild.cloneNode(true);
  card.dataset.label = label;
  $(".name", card).textContent = label;
  setupTeachButton($(".teach", card), () => card.dataset.label);
  $(".upload input", card).addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) await command("add", null, { image: file, query: `?label=${encodeURIComponent(card.dataset.label)}` });
  });
  const renameForm = $(".rename-form", card), confirmBox = $(".confirm", card);
  $(".rename", card).addEventListener("click", () => {
    renameForm.hidden = false; $(".rename-to", card).value = card.dataset.label; $(".rename-to", card).focus();
  });
  $(".cancel", renameForm).addEventListener("click", () => { renameForm.hidden = true; });
  renameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = card.dataset.label, to = $(".rename-to", card).value.trim();
    if (state.pending.has(from)) {  // not in the store yet: only the page knows it
      state.pending.delete(from); state.pending.add(to); renderClasses(); return;
    }
    const reply = await command("rename", { from, to });
    if (reply.ok) renameForm.hidden = true;
  });
  $(".clear", card).addEventListener("click", () => {
    const n = state.counts[card.dataset.label] || 0;
    $(".question", confirmBox).textContent = `Delete all ${n} examples of "${card.dataset.label}"?`;
    confirmBox.hidden = false;
  });
  $(".cancel", confirmBox).addEventListener("click", () => { confirmBox.hidden = true; });
  $(".yes", confirmBox).addEventListener("click", async () => {
    confirmBox.hidden = true;
    if (state.pending.delete(card.dataset.label)) { renderClasses(); return; }
    await command("remove", { label: card.dataset.label });
  });
  return card;
}

function renderClasses() {
  const labels = [...new Set([...Object.keys(state.counts), ...state.pending])].sort();
  const list = $("#classes");
  for (const card of [...list.children]) if (!labels.includes(card.dataset.label)) card.remove();
  labels.forEach((label, i) => {
    const card = cardOf(label) || makeCard(label);
    if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null);
    const n = state.counts[label] || 0;
    $(".count", card).textContent = `${n} example${n === 1 ? "" : "s"}`;
    card.dataset.count = n;
    if (state.shown[label] !== n) { state.shown[label] = n; loadThumbs(label); }
  });
}

async function loadThumbs(label) {
  const card = cardOf(label);
  if (!card) return;
  const n = state.counts[label] || 0;
  const box = $(".thumbs", card);
  if (!n) { box.replaceChildren(); return; }
  const listing = await getJSON(`/api/examples?label=${encodeURIComponent(label)}&limit=${THUMBS_SHOWN}`);
  box.replaceChildren(...listing.examples.map((e) => {
    const cell = document.createElement("div");
    cell.className = "thumb"; cell.dataset.id = e.id;
    const img = document.createElement("img");
    img.src = e.thumbnail; img.loading = "lazy"; img.alt = `example ${e.id} of ${label}`;
    const del = document.createElement("button");
    del.type = "button"; del.className = "delete"; del.textContent = "×"; del.title = "delete this example";
    del.addEventListener("click", async () => { del.disabled = true; await command("remove", { example_id: e.id }); });
    cell.append(img, del);
    return cell;
  }));
  if (n > listing.examples.length) {
    const more = document.createElement("span");
    more.className = "more"; more.textContent = `+${n - listing.examples.length} older`;
    box.append(more);
  }
}

function refreshAllThumbs() { state.shown = {}; renderClasses(); }

$("#new-class").addEventListener("submit", (event) => {
  event.preventDefault();
  const label = $("#new-label").value.trim();
  if (!label) return;
  if (!(label in state.counts)) state.pending.add(label);
  $("#new-label").value = "";
  renderClasses();
});

// Like the hardware button: a click adds one example; holding records until released.
function setupTeachButton(button, labelOf) {
  let holdTimer = null, recording = false, down = false;
  const teachOnce = async () => {
    const reply = await command("add", { label: labelOf() });
    if (reply.ok) state.pending.delete(labelOf());
    return reply.ok;
  };
  const record = async () => {
    recording = true;
    button.classList.add("recording"); button.textContent = "Recording…";
    const period = 1000 / state.session.record_rate;
    while (recording) {
      const started = performance.now();
      if (!(await teachOnce())) break;
      const rest = period - (performance.now() - started);
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    }
    recording = false;
    button.classList.remove("recording"); button.textContent = "Teach";
  };
  button.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    if (down) return;
    down = true;
    button.setPointerCapture(event.pointerId);
    holdTimer = setTimeout(() => { holdTimer = null; record(); }, state.session.hold_time * 1000);
  });
  const release = (event) => {
    if (!down) return;
    down = false;
    if (holdTimer !== null) {  // released before the hold time: one example
      clearTimeout(holdTimer); holdTimer = null;
      if (event.type === "pointerup") teachOnce();
    } else {
      recording = false;
    }
  };
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  button.addEventListener("contextmenu", (event) => event.preventDefault());  // long-press menus on phones
}

// ----- status ------------------------------------------------------------------

const STATUS_FIELDS = [
  ["backend", "backend", (v) => (v === "edgetpu" ? "Edge TPU" : "CPU")],
  ["fps", "frames/s", (v) => v.toFixed(1)],
  ["inference_ms_p50", "inference ms (p50)", (v) => v.toFixed(1)],
  ["camera", "camera", (v) => v],
  ["mqtt", "MQTT", (v) => v],
  ["store_size", "examples stored", (v) => v],
  ["dropped_frames", "frames dropped", (v) => v],
  ["uptime_s", "uptime", (v) => `${Math.floor(v / 3600)}h ${Math.floor((v % 3600) / 60)}m ${Math.floor(v % 60)}s`],
  ["version", "version", (v) => v],
];

function showStatus(s) {
  $("#device").textContent = s.device;
  $("#status").replaceChildren(...STATUS_FIELDS.map(([key, name, format]) => {
    const row = document.createElement("div");
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name; dd.textContent = s[key] === null ? "-" : format(s[key]);
    dd.dataset.key = key;
    if ((key === "camera" && s.camera !== "ok") || (key === "mqtt" && s.mqtt === "disconnected")) dd.className = "bad";
    row.append(dt, dd);
    return row;
  }));
}

// ----- start -------------------------------------------------------------------

let events = null;

function start() {  // the live parts, once reading is allowed
  if (events) return;
  events = new EventSource("/api/events");
  events.addEventListener("prediction", (e) => showPrediction(JSON.parse(e.data)));
  events.addEventListener("classes", (e) => {
    state.counts = JSON.parse(e.data);
    for (const label of Object.keys(state.counts)) state.pending.delete(label);
    renderClasses();
  });
  events.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  showLive(!document.hidden);
  document.addEventListener("visibilitychange", () => showLive(!document.hidden));
}

window.addEventListener("load", async () => {
  const session = await loadSession();
  if (session.can_read) start(); else say("Log in to see this device.", true);
});
