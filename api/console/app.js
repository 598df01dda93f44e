// The operations console: a small page over the public API (/v1), for admin accounts only.
// Everything is rendered with textContent: no server data is ever parsed as HTML.
"use strict";

const TOKEN = "carshare.console.token";
const SEOUL = new Intl.DateTimeFormat("ko-KR", {
  timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const NUMBER = new Intl.NumberFormat("ko-KR");
const VIEWS = ["signin", "bookings", "audit", "hosts", "pipeline"];
let lastAudit = null;
let pipelineTimer = null;

const $ = (id) => document.getElementById(id);
const won = (n) => (n === null || n === undefined ? "—" : `${NUMBER.format(n)}원`);
const seoul = (t) => (t ? SEOUL.format(new Date(t)) : "—");

/** A `datetime-local` value read as Seoul wall-clock time, as RFC 3339. */
function fromSeoulInput(value) {
  if (!value) return null;
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  return `${withSeconds}+09:00`;
}

function status(text, bad = false) {
  const el = $("status");
  el.textContent = text;
  el.className = bad ? "error" : "";
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    if (cell instanceof Node) {
      const td = document.createElement("td");
      td.append(cell);
      tr.append(td);
    } else if (cell && typeof cell === "object") {
      tr.append(el("td", cell.text, cell.className));
    } else {
      tr.append(el("td", cell));
    }
  }
  return tr;
}

function fill(tbodyParent, rows) {
  const body = $(tbodyParent).querySelector("tbody");
  body.replaceChildren(...rows);
}

function pairs(dlId, entries) {
  const dl = $(dlId);
  dl.replaceChildren();
  for (const [k, v] of entries) {
    dl.append(el("dt", k));
    const dd = document.createElement("dd");
    if (v instanceof Node) dd.append(v); else dd.textContent = v === null || v === undefined ? "—" : String(v);
    dl.append(dd);
  }
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/v1${path}`, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN);
    show("signin");
    throw new ApiError(401, body);
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function show(view) {
  const signedIn = Boolean(sessionStorage.getItem(TOKEN));
  const target = signedIn ? (VIEWS.includes(view) && view !== "signin" ? view : "bookings") : "signin";
  for (const v of VIEWS) $(v).hidden = v !== target;
  $("nav").hidden = !signedIn;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#${target}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (pipelineTimer) { clearInterval(pipelineTimer); pipelineTimer = null; }
  if (target === "hosts") loadProfiles().catch(report);
  if (target === "pipeline") {
    loadPipeline().catch(report);
    pipelineTimer = setInterval(() => loadPipeline().catch(report), 2000);
  }
  return target;
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) {
    status("세션이 만료되었습니다. 다시 로그인해 주세요.", true);
  } else {
    status(err.message, true);
  }
}

// --- Sign-in -----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  $("signin-error").textContent = "";
  try {
    const res = await fetch("/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
    });
    const body = await res.json();
    if (!res.ok) throw new ApiError(res.status, body);
    if (body.user?.role !== "admin") {
      $("signin-error").textContent = "관리자 계정만 콘솔을 사용할 수 있습니다.";
      await fetch("/v1/auth/logout", {
        method: "POST",
        headers: { Authorization: `Bearer ${body.access_token}` },
      });
      return;
    }
    sessionStorage.setItem(TOKEN, body.access_token);
    $("who").textContent = body.user.email;
    form.reset();
    location.hash = "#bookings";
    show("bookings");
    status("로그인했습니다.");
  } catch (err) {
    $("signin-error").textContent = err.message;
  }
}

async function signOut() {
  try { await api("/auth/logout", { method: "POST" }); } catch (_) { /* already gone */ }
  sessionStorage.removeItem(TOKEN);
  location.hash = "";
  show("signin");
}

// --- Bookings ----------------------------------------------------------------------------

async function searchBookings(event) {
  event.preventDefault();
  const q = event.target.q.value.trim();
  const found = await api(`/admin/bookings?q=${encodeURIComponent(q)}`);
  $("booking-results").hidden = false;
  $("booking-detail").hidden = true;
  fill("booking-results", found.map((b) => {
    const open = el("button", b.id.slice(0, 8), "secondary");
    open.type = "button";
    open.setAttribute("aria-label", `예약 ${b.id} 열기`);
    open.dataset.booking = b.id;
    open.addEventListener("click", () => openBooking(b.id).catch(report));
    return row([open, b.status, `${seoul(b.start_datetime)} ~ ${seoul(b.end_datetime)}`,
      { text: won(b.total_amount), className: "num" }, b.guest_email || b.guest_id,
      b.host_email || b.host_id, b.license_plate || b.vehicle_id]);
  }));
  status(found.length ? `${found.length}건을 찾았습니다.` : "찾은 예약이 없습니다.");
}

/** Amount-like fields of an event payload (`{"EventName": {...}}`), formatted in won. */
function amounts(payload) {
  const inner = payload && typeof payload === "object" ? Object.values(payload)[0] : null;
  if (!inner || typeof inner !== "object") return "";
  return Object.entries(inner)
    .filter(([k, v]) => typeof v === "number" && /amount|fee|share|gross|refund|rate|paid|kept/.test(k))
    .map(([k, v]) => `${k} ${won(v)}`)
    .join(", ");
}

async function openBooking(id) {
  const [booking, timeline] = await Promise.all([
    api(`/bookings/${id}`),
    api(`/bookings/${id}/timeline`),
  ]);
  $("booking-detail").hidden = false;
  $("booking-detail").dataset.booking = id;
  $("detail-id").textContent = id;
  pairs("detail-summary", [
    ["상태", booking.status],
    ["이용 시간", `${seoul(booking.start_datetime)} ~ ${seoul(booking.end_datetime)}`],
    ["총액", won(booking.total_amount)],
    ["수수료", won(booking.platform_fee)],
    ["호스트 몫", won(booking.host_amount)],
    ["게스트", booking.guest_id],
    ["호스트", booking.host_id],
  ]);
  const p = booking.payment;
  pairs("detail-payment", p ? [
    ["결제 상태", p.status], ["금액", won(p.amount)], ["주문 번호", p.order_id],
    ["결제 수단", p.method], ["승인 시각", seoul(p.approved_at)],
    ["환불된 금액", won(p.refunded_amount)], ["환불 대기", won(p.pending_refund)],
  ] : [["결제", "승인 전이라 결제가 없습니다."]]);
  fill("timeline", timeline.map((e) => row([
    e.position, seoul(e.recorded_at), `${e.aggregate_type} #${e.sequence}`, e.event_type,
    e.actor_role ? `${e.actor_role} ${e.actor_id || ""}` : "플랫폼", e.summary, amounts(e.payload),
  ])));
  status(`이벤트 ${timeline.length}개`);
}

async function bookingAsOf(event) {
  event.preventDefault();
  const id = $("booking-detail").dataset.booking;
  const at = fromSeoulInput(event.target.at.value);
  try {
    const b = await api(`/bookings/${id}?as_of=${encodeURIComponent(at)}`);
    pairs("as-of-state", [["시점", seoul(at)], ["상태", b.status], ["호스트 응답", b.host_response],
      ["취소", b.cancelled_by], ["환불액", won(b.refund_amount)], ["픽업", seoul(b.started_at)],
      ["반납", seoul(b.completed_at)]]);
  } catch (err) {
    if (err.status === 404) pairs("as-of-state", [["시점", seoul(at)], ["상태", "아직 요청되지 않음"]]);
    else throw err;
  }
}

// --- Settlement audit ----------------------------------------------------------------------

async function runAudit(event) {
  event.preventDefault();
  const f = event.target;
  const params = new URLSearchParams();
  const from = fromSeoulInput(f.from.value);
  const to = fromSeoulInput(f.to.value);
  if (from) params.set("from", from);
  if (to) params.set("to", to);
  if (f.host_id.value.trim()) params.set("host_id", f.host_id.value.trim());
  status("감사 중…");
  const r = await api(`/admin/audit/settlements?${params}`);
  lastAudit = r;
  $("audit-result").hidden = false;
  const verdict = el("strong", r.discrepancies.length ? `불일치 ${r.discrepancies.length}건` : "일치",
    r.discrepancies.length ? "bad" : "ok");
  pairs("audit-summary", [["결과", verdict], ["재생한 이벤트", NUMBER.format(r.events_read)],
    ["확인한 정산", NUMBER.format(r.settlements_checked)], ["호스트 지급액", won(r.host_amount)],
    ["플랫폼 수수료", won(r.platform_fee)]]);
  fill("audit-hosts", r.hosts.map((h) => row([h.host_id, { text: h.settlements, className: "num" },
    { text: won(h.gross), className: "num" }, { text: won(h.refunds), className: "num" },
    { text: won(h.platform_fee), className: "num" }, { text: won(h.host_amount), className: "num" }])));
  fill("audit-discrepancies", r.discrepancies.map((d) => row([d.settlement_id, d.booking_id || "—",
    d.kind, el("code", JSON.stringify(d.expected)), el("code", JSON.stringify(d.found)),
    d.events.join(", ")])));
  status("감사를 마쳤습니다.");
}

function csvCell(v) {
  const s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function exportAudit() {
  if (!lastAudit) return;
  const lines = [["section", "host_id", "settlements", "gross", "refunds", "platform_fee", "host_amount"]];
  for (const h of lastAudit.hosts) {
    lines.push(["host", h.host_id, h.settlements, h.gross, h.refunds, h.platform_fee, h.host_amount]);
  }
  lines.push([]);
  lines.push(["section", "settlement_id", "booking_id", "kind", "expected", "found", "events"]);
  for (const d of lastAudit.discrepancies) {
    lines.push(["discrepancy", d.settlement_id, d.booking_id, d.kind, d.expected, d.found, d.events.join(" ")]);
  }
  const csv = lines.map((l) => l.map(csvCell).join(",")).join("\n");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([`\ufeff${csv}\n`], { type: "text/csv;charset=utf-8" }));
  link.download = "settlement-audit.csv";
  document.body.append(link);
  link.click();
  link.remove();
}

// --- Corporate hosts ------------------------------------------------------------------------

async function loadProfiles(quiet = false) {
  const profiles = await api("/admin/corporate-profiles?status=pending");
  fill("profiles", profiles.map((p) => {
    const actions = document.createElement("div");
    const approve = el("button", "승인");
    approve.type = "button";
    approve.setAttribute("aria-label", `${p.company_name} 승인`);
    approve.addEventListener("click", () => decide(p, true).catch(report));
    const reason = el("input");
    reason.placeholder = "반려 사유";
    reason.setAttribute("aria-label", `${p.company_name} 반려 사유`);
    const reject = el("button", "반려", "secondary");
    reject.type = "button";
    reject.addEventListener("click", () => decide(p, false, reason.value).catch(report));
    actions.append(approve, " ", reason, " ", reject);
    return row([p.company_name, p.business_registration_number, seoul(p.created_at), p.status, actions]);
  }));
  if (!profiles.length && !quiet) status("심사를 기다리는 프로필이 없습니다.");
}

async function decide(profile, verified, reason) {
  if (!verified && !reason.trim()) {
    status("반려 사유를 입력해 주세요.", true);
    return;
  }
  const body = verified ? { verified: true } : { verified: false, reason };
  const done = await api(`/admin/corporate-profiles/${profile.id}/verify`, { method: "PUT", body });
  await loadProfiles(true);
  status(`${done.company_name}: ${done.status === "verified" ? "승인했습니다" : "반려했습니다"}.`);
}

// --- Pipeline -------------------------------------------------------------------------------

async function loadPipeline() {
  const p = await api("/admin/projections");
  fill("projections", p.projections.map((s) => {
    const rebuild = document.createElement("div");
    if (s.rebuild) {
      const pct = s.rebuild.events_total ? Math.floor((100 * s.rebuild.events_applied) / s.rebuild.events_total) : 0;
      const bar = el("progress");
      bar.max = 100;
      bar.value = pct;
      bar.setAttribute("aria-label", `${s.name} 재구축 진행률`);
      rebuild.append(bar, ` ${pct}%`);
    } else {
      const button = el("button", "재구축", "secondary");
      button.type = "button";
      button.setAttribute("aria-label", `${s.name} 재구축`);
      button.addEventListener("click", async () => {
        try {
          await api(`/admin/projections/${encodeURIComponent(s.name)}/rebuild`, { method: "POST" });
          status(`${s.name} 재구축을 시작했습니다.`);
          await loadPipeline();
        } catch (err) { report(err); }
      });
      rebuild.append(button);
    }
    return row([s.name, s.source, { text: s.position, className: "num" },
      { text: s.lag_events, className: "num" }, { text: s.lag_seconds.toFixed(1), className: "num" },
      { text: s.dead_letters, className: s.dead_letters ? "num bad" : "num" }, rebuild]);
  }));
  pairs("relay", p.relay ? [["릴레이 상태", p.relay.status], ["릴레이 위치", p.relay.position],
    ["릴레이 지연", `${p.relay.lag_events} 이벤트, ${p.relay.lag_seconds.toFixed(1)}초`],
    ["브로커 오류", p.relay.error]] : [["릴레이", "Kafka 미사용 (Postgres 스트림)"]]);
  fill("dead-letters", p.dead_letters.map((d) => row([d.projection, d.global_position,
    `${d.aggregate_type} ${d.aggregate_id} #${d.sequence}`, d.event_type, { text: d.error, className: "bad" },
    seoul(d.failed_at)])));
}

// --- Wiring ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut().catch(report));
  $("booking-search").addEventListener("submit", (e) => searchBookings(e).catch(report));
  $("as-of").addEventListener("submit", (e) => bookingAsOf(e).catch(report));
  $("audit-form").addEventListener("submit", (e) => runAudit(e).catch(report));
  $("audit-csv").addEventListener("click", exportAudit);
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
});
