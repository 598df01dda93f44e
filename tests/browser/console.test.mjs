// Drives the operations console in Debian's Chromium. Started by tests/tests/console.rs, which
// runs the real service on a fresh database, seeds it through the API and passes what it made
// in the environment. Screenshots of every page go to $SCREENSHOT_DIR.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run through tests/tests/console.rs)`);
  return value;
}

const BASE = env("CONSOLE_BASE_URL");
const SHOTS = env("SCREENSHOT_DIR");
mkdirSync(SHOTS, { recursive: true });

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

test("support, finance and admins work in the console", async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, locale: "ko-KR" });
    const page = await context.newPage();
    const violations = [];
    page.on("console", (m) => { if (m.type() === "error") violations.push(m.text()); });
    page.on("pageerror", (e) => violations.push(String(e)));

    // The page and its strict policy.
    const response = await page.goto(`${BASE}/console`);
    assert.equal(response.status(), 200);
    const csp = response.headers()["content-security-policy"];
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await page.getByRole("heading", { name: "관리자 로그인" }).waitFor();

    // A guest account is refused at sign-in.
    await page.getByLabel("이메일", { exact: true }).fill(env("GUEST_EMAIL"));
    await page.getByLabel("비밀번호", { exact: true }).fill(env("GUEST_PASSWORD"));
    await page.getByRole("button", { name: "로그인" }).click();
    await page.getByText("관리자 계정만 콘솔을 사용할 수 있습니다.").waitFor();
    assert.equal(await page.locator("#nav").isVisible(), false);
    await shot(page, "01-sign-in-refused");

    // The admin signs in.
    await page.getByLabel("이메일", { exact: true }).fill(env("ADMIN_EMAIL"));
    await page.getByLabel("비밀번호", { exact: true }).fill(env("ADMIN_PASSWORD"));
    await page.getByRole("button", { name: "로그인" }).click();
    await page.getByRole("heading", { name: "예약 타임라인" }).waitFor();

    // Booking timeline: found by the guest's e-mail, then by the plate.
    const bookingId = env("BOOKING_ID");
    const search = page.getByLabel("예약 ID, 게스트/호스트 이메일 또는 차량 번호");
    await search.fill(env("GUEST_EMAIL"));
    await page.getByRole("button", { name: "찾기" }).click();
    const open = page.getByRole("button", { name: `예약 ${bookingId} 열기` });
    await open.waitFor();
    await search.fill(env("PLATE"));
    await page.getByRole("button", { name: "찾기" }).click();
    await open.waitFor();
    await open.click();
    const timeline = page.locator("#timeline tbody");
    await timeline.getByText("BookingRequested").waitFor();
    for (const event of ["BookingApproved", "PaymentDue", "PaymentConfirmed", "BookingStarted", "BookingCompleted", "PaymentSettled"]) {
      assert.equal(await timeline.getByText(event, { exact: true }).count(), 1, event);
    }
    assert.match(await timeline.innerText(), /18,000원/);
    assert.match(await page.locator("#detail-payment").innerText(), /completed/);
    // Its state at a chosen instant (after the approval, before pickup).
    await page.getByLabel("특정 시점의 상태 (KST)").fill(env("AS_OF_SEOUL"));
    await page.getByRole("button", { name: "조회" }).click();
    await page.locator("#as-of-state").getByText("approved", { exact: true }).waitFor();
    await shot(page, "02-booking-timeline");

    // Settlement audit: the planted discrepancy, with the events behind it; CSV export.
    await page.getByRole("link", { name: "정산 감사" }).click();
    await page.getByRole("button", { name: "감사 실행" }).click();
    await page.getByText("불일치 1건").waitFor();
    const discrepancies = page.locator("#audit-discrepancies tbody");
    assert.match(await discrepancies.innerText(), /read_model/);
    assert.match(await page.locator("#audit-hosts tbody").innerText(), new RegExp(env("HOST_ID")));
    await shot(page, "03-settlement-audit");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "CSV 내보내기" }).click(),
    ]);
    const csv = readFileSync(await download.path(), "utf8");
    assert.match(csv, /discrepancy,.*read_model/);
    assert.match(csv, new RegExp(`host,${env("HOST_ID")},1,`));

    // Corporate hosts: the pending profile is verified.
    await page.getByRole("link", { name: "법인 호스트" }).click();
    const company = env("COMPANY_NAME");
    await page.getByRole("cell", { name: company, exact: true }).waitFor();
    await shot(page, "04-corporate-hosts");
    await page.getByRole("button", { name: `${company} 승인` }).click();
    await page.getByText(`${company}: 승인했습니다.`).waitFor();
    assert.equal(await page.getByRole("cell", { name: company, exact: true }).count(), 0);

    // Pipeline: projections, the dead-lettered event with its error; a rebuild.
    await page.getByRole("link", { name: "파이프라인" }).click();
    const dead = page.locator("#dead-letters tbody");
    await dead.getByText(env("DEAD_EVENT_TYPE")).first().waitFor();
    assert.match(await dead.innerText(), /cannot decode/);
    await page.locator("#projections tbody").getByText("notifications", { exact: true }).waitFor();
    await shot(page, "05-pipeline");
    await page.getByRole("button", { name: "reviews 재구축" }).click();
    await page.getByText("reviews 재구축을 시작했습니다.").waitFor();

    // At phone width the pages fit the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("link", { name: "예약 타임라인" }).click();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await shot(page, "06-phone-width");

    await page.getByRole("button", { name: "로그아웃" }).click();
    await page.getByRole("heading", { name: "관리자 로그인" }).waitFor();
    assert.deepEqual(violations, [], "no script errors or CSP violations");
  } finally {
    await browser.close();
  }
});
