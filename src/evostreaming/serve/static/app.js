// evostreaming live page: plain JS, no build step. Protocol: docs/server.md (evostreaming.v1).
"use strict";
const $ = (id) => document.getElementById(id);
const PROTOCOL = "evostreaming.v1";
let ws = null, timer = null, seq = 0, t0 = 0, stream = null;
const cards = new Map();

function status(text) { $("status").textContent = text; }
function error(text) { const e = $("error"); e.textContent = text; e.classList.toggle("hidden", !text); }

document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
  document.querySelectorAll(".pane").forEach((p) => p.classList.toggle("hidden", p.id !== "pane-" + b.dataset.tab));
}));

function connect(onOpen) {
  disconnect();  // the socket only: a camera just opened for this connection keeps running
  const token = $("token").value.trim();
  const protocols = [PROTOCOL].concat(token ? ["bearer." + token] : []);
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/realtime";
  ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { status("Connected."); error(""); };
  ws.onmessage = (m) => handle(JSON.parse(m.data), onOpen);
  ws.onclose = (e) => {
    if (e.code === 1008) error("Refused: wrong or missing API key.");
    else if (e.code === 1013) error("The server is full: " + (e.reason || "try again later."));
    status("Disconnected" + (e.reason ? " (" + e.reason + ")." : "."));
    clearInterval(timer); timer = null;
  };
  ws.onerror = () => error("Cannot reach the server (or the API key was refused).");
}

function send(obj) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); }

function handle(ev, onOpen) {
  switch (ev.type) {
    case "session.created":
      $("model").textContent = ev.session.model;
      send({type: "session.update", session: {fps: Number($("fps").value)}});
      onOpen();
      break;
    case "frame.decision": tick(ev.seq, ev.action, ev.question); break;
    case "frame.dropped": tick(ev.seq, "dropped"); break;
    case "response.created": card(ev.response_id, ev.time); break;
    case "response.output_text.delta": cards.get(ev.response_id).text.textContent += ev.delta; break;
    case "response.done": { const c = cards.get(ev.response_id); c.text.textContent = ev.text; c.el.dataset.done = "1"; break; }
    case "conversation.item.created": { const q = document.createElement("div"); q.className = "card question"; q.textContent = "You: " + ev.text; $("responses").prepend(q); break; }
    case "error": error(ev.message); break;
    case "session.stats": status("Session ended: " + ev.decisions + " frames, " + ev.responses + " responses."); break;
  }
}

function tick(s, kind, question) {
  const t = document.createElement("span");
  t.className = "tick " + kind + (question ? " question" : "");
  t.title = "frame " + s + ": " + kind + (question ? " (question: " + question + ")" : "");
  $("timeline").append(t);
}

function card(id, time) {
  const el = document.createElement("div");
  el.className = "card response";
  const when = document.createElement("span"); when.className = "when"; when.textContent = time.toFixed(1) + " s";
  const text = document.createElement("span"); text.className = "text";
  el.append(when, text);
  $("responses").prepend(el);
  cards.set(id, {el, text});
}

function startFrames(video) {
  const canvas = $("canvas"), fps = Number($("fps").value);
  seq = 0; t0 = performance.now();
  timer = setInterval(() => {
    if (!ws || ws.readyState !== 1 || video.readyState < 2) return;
    const w = video.videoWidth, h = video.videoHeight, scale = Math.min(1, Math.sqrt(448 * 448 / (w * h)));
    canvas.width = Math.round(w * scale); canvas.height = Math.round(h * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const time = (performance.now() - t0) / 1000, n = seq++;
    canvas.toBlob((blob) => blob.arrayBuffer().then((bytes) => {
      const head = new DataView(new ArrayBuffer(16));
      [69, 83, 70, 49].forEach((c, i) => head.setUint8(i, c));  // "ESF1"
      head.setUint32(4, n); head.setFloat64(8, time);
      const msg = new Uint8Array(16 + bytes.byteLength);
      msg.set(new Uint8Array(head.buffer), 0); msg.set(new Uint8Array(bytes), 16);
      if (ws && ws.readyState === 1) ws.send(msg.buffer);
    }), "image/jpeg", 0.85);
  }, 1000 / fps);
}

$("start-webcam").addEventListener("click", async () => {
  stop();
  try { stream = await navigator.mediaDevices.getUserMedia({video: true}); }
  catch (e) { error("Camera refused or missing: " + e.message); return; }
  const v = $("video"); v.srcObject = stream; await v.play();
  connect(() => startFrames(v));
});

$("file").addEventListener("change", async () => {
  const f = $("file").files[0]; if (!f) return;
  stop();
  const v = $("video"); v.srcObject = null; v.src = URL.createObjectURL(f); await v.play();
  connect(() => startFrames(v));
});

$("start-url").addEventListener("click", () => {
  const url = $("url").value.trim(); if (!url) return;
  stop();
  connect(() => send({type: "session.update", session: {source: {type: "url", url}}}));
});

function ask() {
  const q = $("question").value.trim(); if (!q) return;
  send({type: "conversation.item.create", item: {type: "message", role: "user", content: [{type: "input_text", text: q}]}});
  $("question").value = "";
}
$("send").addEventListener("click", ask);
$("question").addEventListener("keydown", (e) => { if (e.key === "Enter") ask(); });

function disconnect() {
  clearInterval(timer); timer = null;
  if (ws) { send({type: "session.close"}); ws.close(); ws = null; }
}

function stop() {
  disconnect();
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
}
$("stop").addEventListener("click", stop);
