"""The registry benchmark: creation, journaled twin updates, attribute queries, time travel.

    .venv/bin/python bench/registry.py                      # both backends, 100,000 Things
    .venv/bin/python bench/registry.py --things 10000 --seconds 5 --backend sqlite

Everything goes through the HTTP API of a real server subprocess on 127.0.0.1. The update
rate is set against the same server's `GET /healthz` rate, measured in the same run with
the same client and concurrency: the ceiling of this HTTP stack on this machine. See
bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

# `python bench/registry.py` puts bench/ first on sys.path, so the shared helpers import
# directly (bench/ is a folder of scripts, not a package).
from _common import (
    RESULTS_DIR,
    WRK,
    LoadResult,
    Row,
    latency_summary_ms,
    postgres_database,
    print_table,
    run_header,
    run_httpx,
    run_wrk,
    running_server,
    timed_sequential,
    verdict,
    write_json,
)

THREADS = 2
CONNECTIONS = 8
SITES = 100  # so each `attributes.site` value matches 1% of the Things
PAGE = 1000  # the API's largest page: every match of a 1% query in one answer
DEFAULT_PAGE = 100  # the API's default page
# The paced load under the loaded query: connections enough that a slow answer does not hold
# the rate down (at 1,000/s and 32 connections each waits 32 ms between requests).
PACED_CONNECTIONS = 32
CREATE_BATCH = 1000  # Things per `POST /api/v1/things:batch` (the API's largest)

# Targets from the brief; Ditto's figure is published, not measured here.
TARGET_UPDATES_PER_S_SQLITE = 2000.0
TARGET_UPDATES_PER_S_POSTGRESQL = 2000.0
TARGET_CREATE_S_POSTGRESQL = 60.0  # for 100,000 Things (issue 14)
TARGET_QUERY_P99_MS = 50.0
TARGET_QUERY_AT_THINGS = 100_000
DITTO_MODIFIES_PER_S = 800.0


def thing_id(i: int) -> str:
    return f"bench:t-{i:06d}"


def site_of(i: int) -> int:
    return i % SITES


def thing_body(i: int) -> dict[str, Any]:
    return {
        "id": thing_id(i),
        "kind": "sensor",
        "attributes": {"site": f"site-{site_of(i):02d}", "floor": i % 10},
        "labels": {"tier": "edge"},
    }


def rfc3339(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def now_us() -> int:
    return time.time_ns() // 1000


# --- wrk scripts ---------------------------------------------------------------------------
# wrk gives each thread its own Lua state; `setup` runs in the main state once per thread and
# hands each one its index, so threads write disjoint id ranges and distinct values. The main
# state keeps the thread objects so `done` can read their counters.

_LUA_COMMON = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function copy_headers(content_type)
  local out = {}
  for k, v in pairs(wrk.headers) do out[k] = v end
  out["Content-Type"] = content_type
  return out
end

local function status_text()
  local parts = {}
  for code, n in pairs(bad_status) do table.insert(parts, code .. ":" .. n) end
  return table.concat(parts, ",")
end

local function note_status(status)
  -- "409:3,500:1": enough to say what went wrong without escaping bodies into JSON.
  bad = bad + 1
  bad_status[status] = (bad_status[status] or 0) + 1
  bad_text = status_text()
end

function bench_sum(name)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get(name) or 0) end
  return total
end

function bench_statuses()
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("bad_text") or ""
    for code, n in string.gmatch(s, "(%d+):(%d+)") do
      merged[code] = (merged[code] or 0) + tonumber(n)
    end
  end
  local parts = {}
  for code, n in pairs(merged) do table.insert(parts, code .. ":" .. n) end
  return table.concat(parts, ",")
end

"""

# Each thread creates its share of ids [first, last). Once its share is sent, a connection
# that asks for another request gets a harmless GET /healthz (answering 200, never 201), so
# a share is complete when every create has been answered, and wrk stops the thread then:
# the count is exact and no create is left in flight at the end.
CREATE_LUA = (
    _LUA_COMMON
    + r"""
function init(args)
  local total, nthreads = tonumber(args[1]), tonumber(args[2])
  first = math.floor(total * tid / nthreads)
  last = math.floor(total * (tid + 1) / nthreads)
  sent, answered, created, bad, bad_status = 0, 0, 0, 0, {}
  hdr = copy_headers("application/json")
end

function request()
  -- wrk calls request() once before the run to check the script and throws that request
  -- away; a filler there keeps every id for a request that is really sent.
  if not checked then
    checked = true
    return wrk.format("GET", "/healthz", hdr)
  end
  if first + sent < last then
    local i = first + sent
    sent = sent + 1
    local body = string.format(
      '{"id":"bench:t-%06d","kind":"sensor","attributes":{"site":"site-%02d","floor":%d},'
      .. '"labels":{"tier":"edge"}}', i, i % 100, i % 10)
    return wrk.format("POST", "/api/v1/things", hdr, body)
  end
  return wrk.format("GET", "/healthz", hdr)
end

function response(status, headers, body)
  if status == 200 then return end
  answered = answered + 1
  if status == 201 then created = created + 1 else note_status(status) end
  if answered >= last - first then bench_stop() end
end

function bench_done_extra()
  return string.format(',"created":%d,"bad":%d,"bad_statuses":"%s"',
    bench_sum("created"), bench_sum("bad"), bench_statuses())
end
"""
)

# Random Things among those that exist (the file args[1] holds one index a line), and a
# value no request has sent before (thread index and counter), so each PATCH is a real change
# and appends exactly one journal event.
UPDATE_LUA = (
    _LUA_COMMON
    + r"""
function init(args)
  ids = {}
  for line in io.lines(args[1]) do ids[#ids + 1] = tonumber(line) end
  cap = tonumber(args[2])
  math.randomseed(tonumber(args[3]) + 7919 * tid)
  counter, ok, bad, bad_status = 0, 0, 0, {}
  hdr = copy_headers("application/merge-patch+json")
end

function request()
  counter = counter + 1
  local i = ids[math.random(1, #ids)]
  local body = string.format('{"temp":%d.%d,"n":"%d-%d"}',
    15 + counter % 20, counter % 10, tid, counter)
  return wrk.format("PATCH",
    string.format("/api/v1/things/bench:t-%06d/twin/reported", i), hdr, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else note_status(status) end
  if ok + bad >= cap then bench_stop() end
end

function bench_done_extra()
  return string.format(',"ok":%d,"bad":%d,"bad_statuses":"%s"',
    bench_sum("ok"), bench_sum("bad"), bench_statuses())
end
"""
)

HEALTHZ_LUA = (
    _LUA_COMMON
    + r"""
function init(args)
  cap = tonumber(args[1])
  ok, bad, bad_status = 0, 0, {}
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else note_status(status) end
  if ok + bad >= cap then bench_stop() end
end

function bench_done_extra()
  return string.format(',"ok":%d,"bad":%d,"bad_statuses":"%s"',
    bench_sum("ok"), bench_sum("bad"), bench_statuses())
end
"""
)


# The background load of the loaded query phase: the same updates as UPDATE_LUA, paced to
# args[4] requests/s per thread on a clock of wrk's own (LuaJIT's ffi: wrk's Lua has no
# sub-second clock), so the queries meet a known update rate and not whatever is left of the
# machine. Each request takes the next slot of the thread's schedule, as an open-loop client
# would: after a stall of the server the missed slots go out at once, up to 100 ms of them;
# a schedule further behind (the server slower than the rate) starts again from now. The
# thread stops once the file args[5] exists (checked every 20 answers), or at the cap.
PACED_UPDATE_LUA = (
    UPDATE_LUA
    + r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local update_init, update_response = init, response
function init(args)
  update_init(args)
  -- Values apart from those of the updates phase (same threads, same counters): a PATCH
  -- that repeated a Thing's current value would change nothing and journal nothing.
  counter = 1000000000
  period = 1000 / tonumber(args[4])
  stop_file = args[5]
  answers = 0
end

function delay()
  local now = now_ms()
  if next_at == nil or next_at < now - 100 then next_at = now end
  next_at = next_at + period
  return math.max(0, math.floor(next_at - now))
end

function response(status, headers, body)
  update_response(status, headers, body)
  answers = answers + 1
  if answers % 20 == 0 then
    local f = io.open(stop_file, "r")
    if f then f:close(); bench_stop() end
  end
end
"""
)

# --- phases --------------------------------------------------------------------------------


class Bench:
    def __init__(self, base_url: str, headers: dict[str, str], args: argparse.Namespace):
        self.base_url = base_url
        self.headers = headers
        self.args = args
        self.client_name = "wrk" if args.client == "wrk" else "httpx"
        self.rng = random.Random(args.seed)
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30.0)
        self.problems: list[str] = []
        # Indices of the Things the listing showed after creation: later phases use only
        # these, so a creation cut short by its time bound still leaves the others valid.
        self.existing: list[int] = []

    def close(self) -> None:
        self.http.close()

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  ! {text}", flush=True)

    # 1. creation

    def create(self) -> dict[str, Any]:
        n = self.args.things
        started = time.perf_counter()
        if self.args.create_mode == "batch":
            load, created, bad, bad_statuses = self._create_batches(n)
            duration = load.duration_s
        elif self.client_name == "wrk":
            load = run_wrk(
                self.base_url + "/api/v1/things",
                CREATE_LUA,
                threads=THREADS,
                connections=CONNECTIONS,
                duration_s=self.args.create_timeout,
                args=[str(n), str(THREADS)],
                headers=self.headers,
            )
            created = int(load.extra["created"])
            bad = int(load.extra["bad"])
            bad_statuses = load.extra["bad_statuses"]
            # The wrk run also counted the healthz fillers; the creates are what counts here.
            duration = load.duration_s
        else:
            load, created, bad, bad_statuses = self._create_httpx(n)
            duration = load.duration_s
        wall = time.perf_counter() - started
        listed = self.list_all_ids(max_seconds=self.args.create_timeout)
        expected = {thing_id(i) for i in range(n)}
        self.existing = sorted(int(t.rsplit("-", 1)[1]) for t in listed & expected)
        if not self.existing:
            raise RuntimeError(f"creation: no Thing was created ({bad_statuses or 'no answer'})")
        missing = len(expected - listed)
        unexpected = len(listed - expected)
        if missing or unexpected or bad:
            self.problem(
                f"creation: {len(listed)} Things listed, {missing} missing, {unexpected} "
                f"unexpected, {bad} non-201 answers ({bad_statuses or 'none'})"
            )
        return {
            "things_requested": n,
            "created_201": created,
            "non_201": bad,
            "non_201_statuses": bad_statuses,
            "listed": len(listed),
            # The Things of this run that exist: what the later phases and verdicts judge.
            "existing": len(self.existing),
            "missing": missing,
            "unexpected": unexpected,
            "duration_s": round(duration, 3),
            "wall_s": round(wall, 3),
            "things_per_s": round(len(listed & expected) / duration, 1) if duration else 0.0,
            "latency_p50_ms": round(load.p50_ms, 3),
            "latency_p99_ms": round(load.p99_ms, 3),
            "socket_errors": load.socket_errors,
            "timed_out": len(listed & expected) < n,
        }

    def _create_httpx(self, n: int) -> tuple[LoadResult, int, int, str]:
        shares = [(n * w // CONNECTIONS, n * (w + 1) // CONNECTIONS) for w in range(CONNECTIONS)]
        statuses: dict[int, int] = {}

        def next_request(worker: int, i: int) -> tuple[str, str, Any] | None:
            first, last = shares[worker]
            return None if first + i >= last else ("POST", "/api/v1/things", thing_body(first + i))

        def on_response(_worker: int, response: httpx.Response) -> None:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        return self._creating(next_request, on_response, statuses)

    def _creating(
        self,
        next_request: Callable[[int, int], tuple[str, str, Any] | None],
        on_response: Callable[[int, httpx.Response], None],
        statuses: Mapping[int, int],
    ) -> tuple[LoadResult, int, int, str]:
        """Run creation requests over the 8 connections; `on_response` counts each Thing's
        status into `statuses`: the load, the Things created (201), the others and theirs."""
        load = run_httpx(
            self.base_url,
            next_request,
            workers=CONNECTIONS,
            duration_s=self.args.create_timeout,
            headers=self.headers,
            on_response=on_response,
        )
        bad = sum(c for s, c in statuses.items() if s != 201)
        text = ",".join(f"{s}:{c}" for s, c in statuses.items() if s != 201)
        return load, statuses.get(201, 0), bad, text

    def _create_batches(self, n: int) -> tuple[LoadResult, int, int, str]:
        """Creation through `POST /api/v1/things:batch`, CREATE_BATCH Things a call, the
        calls spread over the same 8 connections; each Thing is still journaled alone."""
        calls = [range(i, min(i + CREATE_BATCH, n)) for i in range(0, n, CREATE_BATCH)]
        shares = [calls[w::CONNECTIONS] for w in range(CONNECTIONS)]
        statuses: Counter[int] = Counter()

        def next_request(worker: int, i: int) -> tuple[str, str, Any] | None:
            if i >= len(shares[worker]):
                return None
            return (
                "POST",
                "/api/v1/things:batch",
                {"things": [thing_body(k) for k in shares[worker][i]]},
            )

        def on_response(_worker: int, response: httpx.Response) -> None:
            if response.status_code != 200:
                statuses[response.status_code] += 1
                return
            statuses.update(item["status"] for item in response.json()["items"])

        return self._creating(next_request, on_response, statuses)

    def list_all_ids(self, max_seconds: float) -> set[str]:
        ids: set[str] = set()
        cursor: str | None = None
        deadline = time.perf_counter() + max_seconds
        for _ in range(self.args.things // PAGE + 10):
            params: dict[str, Any] = {"limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            page = self.get_json("/api/v1/things", params)
            ids.update(item["id"] for item in page["items"])
            cursor = page.get("next")
            if not cursor or time.perf_counter() > deadline:
                break
        return ids

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.http.get(path, params=params)
        if response.status_code != 200:
            raise ApiError("GET", str(response.request.url), response)
        return response.json()

    def journal_count(self) -> tuple[int, float]:
        started = time.perf_counter()
        result = self.get_json("/api/v1/journal/verify")
        if not result.get("ok"):
            self.problem(f"the journal does not verify: {result}")
        return int(result["checked"]), time.perf_counter() - started

    # 2. updates and 3. the healthz ceiling

    def healthz(self) -> dict[str, Any]:
        seconds = self.args.seconds
        cap = self.args.max_requests_per_s * seconds
        if self.client_name == "wrk":
            load = run_wrk(
                self.base_url + "/healthz",
                HEALTHZ_LUA,
                threads=THREADS,
                connections=CONNECTIONS,
                duration_s=seconds,
                args=[str(cap // THREADS)],
            )
        else:
            load = run_httpx(
                self.base_url,
                lambda _w, i: None if i >= cap // CONNECTIONS else ("GET", "/healthz", None),
                workers=CONNECTIONS,
                duration_s=seconds,
            )
        return {**_load_dict(load), "requests_per_s": round(load.rate, 1)}

    def updates(self) -> dict[str, Any]:
        seconds = self.args.seconds
        cap = self.args.max_requests_per_s * seconds
        before, verify_before_s = self.journal_count()
        if self.client_name == "wrk":
            with tempfile.NamedTemporaryFile("w", suffix=".ids") as ids:
                ids.write("".join(f"{i}\n" for i in self.existing))
                ids.flush()
                load = run_wrk(
                    self.base_url + "/api/v1/things",
                    UPDATE_LUA,
                    threads=THREADS,
                    connections=CONNECTIONS,
                    duration_s=seconds,
                    args=[ids.name, str(cap // THREADS), str(self.args.seed)],
                    headers=self.headers,
                )
            ok = int(load.extra["ok"])
            bad_statuses = load.extra["bad_statuses"]
        else:
            load, ok, bad_statuses = self._updates_httpx(seconds, cap)
        after, verify_after_s = self.journal_count()
        events = after - before
        non_2xx = load.requests - ok
        # wrk stops at the deadline without waiting for the requests then in flight; the
        # server still commits them, so the journal may hold up to one more per connection.
        matches = 0 <= events - ok <= CONNECTIONS
        if non_2xx or not matches:
            self.problem(
                f"updates: {ok} answered 200, {non_2xx} not ({bad_statuses or 'none'}), "
                f"{events} journal events"
            )
        return {
            **_load_dict(load),
            "ok_200": ok,
            "non_2xx": non_2xx,
            "non_2xx_statuses": bad_statuses,
            "requests_per_s": round(ok / load.duration_s, 1),
            "journal_events_before": before,
            "journal_events_after": after,
            "journal_events": events,
            "journal_events_per_s": round(events / load.duration_s, 1),
            "journal_matches_requests": matches,
            "journal_verify_s": [round(verify_before_s, 3), round(verify_after_s, 3)],
        }

    def _updates_httpx(self, seconds: float, cap: int) -> tuple[LoadResult, int, str]:
        rng = random.Random(self.args.seed)
        statuses: dict[int, int] = {}

        def next_request(worker: int, i: int) -> tuple[str, str, Any] | None:
            if i >= cap // CONNECTIONS:
                return None
            body = {"temp": 15 + (i % 200) / 10, "n": f"{worker}-{i}"}
            path = f"/api/v1/things/{thing_id(rng.choice(self.existing))}/twin/reported"
            return ("PATCH", path, body)

        def on_response(_worker: int, response: httpx.Response) -> None:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        load = run_httpx(
            self.base_url,
            next_request,
            workers=CONNECTIONS,
            duration_s=seconds,
            headers=self.headers,
            on_response=on_response,
        )
        text = ",".join(f"{s}:{c}" for s, c in statuses.items() if s != 200)
        return load, statuses.get(200, 0), text

    # 4. attribute query

    def query(self, page: int = PAGE) -> dict[str, Any]:
        """Timed: the request until its whole body has arrived; the answers are parsed and
        checked afterwards, so the client's JSON decoding is not counted as the server's."""
        per_site = Counter(site_of(i) for i in self.existing)
        answers: list[tuple[int, httpx.Response]] = []

        def one(_i: int) -> None:
            site = self.rng.randrange(SITES)
            q = f'attributes.site == "site-{site:02d}"'
            answers.append((site, self.http.get("/api/v1/things", params={"q": q, "limit": page})))

        latencies = timed_sequential(
            one, warmup=10, count=self.args.queries, max_seconds=self.args.phase_timeout
        )
        wrong: list[str] = []
        for site, response in answers:
            if response.status_code != 200:
                raise ApiError("GET", str(response.request.url), response)
            items = response.json()["items"]
            want = min(per_site[site], page)
            off_site = sum(1 for t in items if t["attributes"].get("site") != f"site-{site:02d}")
            if len(items) != want or off_site:
                wrong.append(f"site-{site:02d}: {len(items)} items (want {want}), {off_site} off")
        if wrong:
            self.problem(f"query: {len(wrong)} wrong answers, first: {wrong[0]}")
        return {
            **latency_summary_ms(latencies),
            "limit": page,
            "items_per_answer": min(len(self.existing) // SITES, page),
            "wrong_answers": len(wrong),
            "first_wrong": wrong[0] if wrong else None,
        }

    def query_first_page(self) -> dict[str, Any]:
        """The same queries with the API's default page size, as a UI or CLI asks them."""
        return self.query(DEFAULT_PAGE)

    def query_under_load(self) -> dict[str, Any]:
        """The attribute query of `query`, timed while wrk sends `--load-rate` twin updates
        a second (paced, random Things, each a real change) from its own process: a query
        then shares the server's loop, its reader threads and the disk with the writer, as
        it does in production. The updates are checked against the journal as in `updates`,
        and the rate they reached is reported beside the latencies (a query figure measured
        under less load than asked is no answer to the target)."""
        if self.client_name != "wrk":
            # The httpx fallback would share this process (and its GIL) with the timed
            # queries, so its load would be the client's, not the server's.
            return {"skipped": "needs wrk: the load must run in a process of its own"}
        rate = self.args.load_rate
        seconds = self.args.phase_timeout + 30.0
        cap = int(rate * seconds)
        before, _ = self.journal_count()
        with tempfile.TemporaryDirectory() as tmp:
            ids, stop = Path(tmp) / "ids", Path(tmp) / "stop"
            ids.write_text("".join(f"{i}\n" for i in self.existing))
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(
                    run_wrk,
                    self.base_url + "/api/v1/things",
                    PACED_UPDATE_LUA,
                    threads=THREADS,
                    connections=PACED_CONNECTIONS,
                    duration_s=seconds,
                    args=[
                        str(ids),
                        str(cap // THREADS),
                        str(self.args.seed + 1),
                        str(rate / THREADS),
                        str(stop),
                    ],
                    headers=self.headers,
                )
                try:
                    time.sleep(self.args.load_warmup)  # the load settles before the clock
                    if running.done():
                        running.result()  # wrk ended early: raise what it said
                    started = time.perf_counter()
                    queries = self.query()
                    queried_s = time.perf_counter() - started
                finally:
                    stop.touch()
                load = running.result()
        after, _ = self.journal_count()
        ok = int(load.extra["ok"])
        events = after - before
        non_2xx = load.requests - ok
        matches = 0 <= events - ok <= PACED_CONNECTIONS
        if non_2xx or not matches:
            self.problem(
                f"updates under queries: {ok} answered 200, {non_2xx} not "
                f"({load.extra['bad_statuses'] or 'none'}), {events} journal events"
            )
        reached = ok / load.duration_s if load.duration_s else 0.0
        return {
            **queries,
            "load": {
                **_load_dict(load),
                "asked_per_s": rate,
                "updates_per_s": round(reached, 1),
                "ok_200": ok,
                "non_2xx": non_2xx,
                "journal_events": events,
                "journal_matches_requests": matches,
                "warmup_s": self.args.load_warmup,
                "queries_s": round(queried_s, 3),
            },
        }

    # 5. time travel

    def time_travel(self) -> dict[str, Any]:
        count = min(self.args.tt_things, len(self.existing))
        changes = self.args.tt_changes
        chosen = self.rng.sample(self.existing, count)
        seeded_started = time.perf_counter()
        # instants[(i, k)]: a moment after change k of Thing i was answered and before change
        # k + 1 was sent, so the Thing as it was then has reported.tt == k.
        instants = asyncio.run(self._seed_changes(chosen, changes))
        seed_s = time.perf_counter() - seeded_started
        keys = sorted(instants)
        if not keys:
            raise RuntimeError("time travel: no changes were made within the time bound")
        wrong: list[str] = []
        samples: list[tuple[str, int, dict[str, Any]]] = []

        def one(i: int) -> None:
            idx, k = keys[self.rng.randrange(len(keys))]
            at = instants[(idx, k)]
            response = self.http.get(f"/api/v1/things/{thing_id(idx)}", params={"at": rfc3339(at)})
            if response.status_code != 200:
                raise ApiError("GET", str(response.request.url), response)
            doc = response.json()
            got = doc["twin"]["reported"].get("tt")
            if got != k:
                wrong.append(f"{thing_id(idx)} at {rfc3339(at)}: reported.tt={got!r}, want {k}")
            if 0 <= i < self.args.tt_deep_checks:
                samples.append((thing_id(idx), at, doc))

        latencies = timed_sequential(
            one, warmup=10, count=self.args.queries, max_seconds=self.args.phase_timeout
        )
        # A few answers, checked whole: the reported state folded from the Thing's own
        # history up to that instant must equal what `?at=` answered.
        deep_wrong = 0
        for tid, at, doc in samples:
            folded = self.reported_from_history(tid, at)
            if folded != doc["twin"]["reported"]:
                deep_wrong += 1
                wrong.append(f"{tid} at {rfc3339(at)}: answer differs from its history")
        if wrong:
            self.problem(f"time travel: {len(wrong)} wrong answers, first: {wrong[0]}")
        return {
            **latency_summary_ms(latencies),
            "things": count,
            "changes_per_thing": changes,
            "changes_made": len(instants) + count,
            "seed_s": round(seed_s, 3),
            "wrong_answers": len(wrong),
            "deep_checks": len(samples),
            "deep_check_failures": deep_wrong,
            "first_wrong": wrong[0] if wrong else None,
        }

    async def _seed_changes(self, chosen: list[int], changes: int) -> dict[tuple[int, int], int]:
        instants: dict[tuple[int, int], int] = {}
        queue = list(chosen)
        deadline = time.perf_counter() + self.args.phase_timeout
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=30.0
        ) as client:

            async def worker() -> None:
                while queue and time.perf_counter() < deadline:
                    idx = queue.pop()
                    path = f"/api/v1/things/{thing_id(idx)}/twin/reported"
                    answered_us = None
                    for k in range(1, changes + 1):
                        if answered_us is not None:
                            # A little room so the instant sits clearly between two events
                            # even where the clock is coarse.
                            await asyncio.sleep(0.002)
                            sent_us = now_us()
                            instants[(idx, k - 1)] = (answered_us + sent_us) // 2
                        response = await client.patch(
                            path,
                            json={"tt": k},
                            headers={"Content-Type": "application/merge-patch+json"},
                        )
                        if response.status_code != 200:
                            raise ApiError("PATCH", str(response.request.url), response)
                        answered_us = now_us()

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return instants

    def reported_from_history(self, tid: str, at_us: int) -> dict[str, Any]:
        reported: dict[str, Any] = {}
        cursor: str | None = None
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            params: dict[str, Any] = {"limit": PAGE, "until": rfc3339(at_us)}
            if cursor:
                params["cursor"] = cursor
            page = self.get_json(f"/api/v1/things/{tid}/history", params)
            for event in page["items"]:
                if event["type"] == "reported_changed":
                    reported = merge_patch(reported, event["patch"])
            cursor = page.get("next")
            if not cursor:
                break
        return reported


class ApiError(RuntimeError):
    def __init__(self, method: str, url: str, response: httpx.Response):
        super().__init__(f"{method} {url} -> {response.status_code} {response.text[:500]}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396, written out here so the check does not trust the code under test."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _load_dict(load: LoadResult) -> dict[str, Any]:
    return {
        "client": load.client,
        "requests": load.requests,
        "duration_s": round(load.duration_s, 3),
        "latency_p50_ms": round(load.p50_ms, 3),
        "latency_p99_ms": round(load.p99_ms, 3),
        "socket_errors": load.socket_errors,
    }


# --- one backend ---------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if backend == "postgresql":
        with postgres_database() as url:
            return _run(backend, url, args)
    return _run(backend, None, args)


def _run(backend: str, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "create_mode": args.create_mode}
    started = time.perf_counter()
    with running_server(database_url) as server:
        bench = Bench(server.base_url, server.headers, args)
        try:
            steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("create", bench.create),
                ("healthz", bench.healthz),
                ("updates", bench.updates),
                ("query", bench.query),
                ("query_first_page", bench.query_first_page),
                ("query_under_load", bench.query_under_load),
                ("time_travel", bench.time_travel),
            ]
            for name, step in steps:
                print(f"[{backend}] {name} ...", flush=True)
                step_started = time.perf_counter()
                out[name] = step()
                print(f"[{backend}] {name} done in {time.perf_counter() - step_started:.1f}s")
        finally:
            bench.close()
            out["problems"] = bench.problems
            out["server_exit_code"] = server.stop()
            if server.process is not None and server.process.returncode not in (0, None):
                out["server_log_tail"] = server.log()
    updates = out["updates"]["requests_per_s"]
    ceiling = out["healthz"]["requests_per_s"]
    out["ratios"] = {
        "updates_per_healthz": round(updates / ceiling, 3) if ceiling else None,
        "updates_per_ditto_published": round(updates / DITTO_MODIFIES_PER_S, 2),
    }
    out["duration_s"] = round(time.perf_counter() - started, 1)
    return out


def table(result: dict[str, Any], n: int) -> list[Row]:
    backend = result["backend"]
    c, h, u, t = (result[k] for k in ("create", "healthz", "updates", "time_travel"))
    qp = result["query_first_page"]
    ratio = result["ratios"]["updates_per_healthz"]
    update_target = (
        TARGET_UPDATES_PER_S_SQLITE if backend == "sqlite" else TARGET_UPDATES_PER_S_POSTGRESQL
    )
    update_ok = u["requests_per_s"] >= update_target
    # Judged by the Things that exist, not by --things: a creation cut short by its time
    # bound must not pass a target set for 100,000.
    existing = c["existing"]
    create_target = backend == "postgresql" and existing >= TARGET_QUERY_AT_THINGS
    create_ok = not (c["missing"] or c["unexpected"] or c["non_201"])
    if create_target:
        create_ok = create_ok and c["duration_s"] < TARGET_CREATE_S_POSTGRESQL
    rows = [
        Row(
            f"create {n:,} Things ({result.get('create_mode', 'single')}, 8 conns)",
            f"{c['things_per_s']:,.0f}/s",
            note=f"{c['listed']:,} listed, {c['non_201']} non-201, {c['duration_s']:.1f}s"
            + (" (time bound reached)" if c["timed_out"] else ""),
            verdict=verdict(create_ok) if create_target else ("" if create_ok else verdict(False)),
            target="all N listed"
            + (f", < {TARGET_CREATE_S_POSTGRESQL:.0f} s" if backend == "postgresql" else ""),
        ),
        Row(
            "twin updates (PATCH reported)",
            f"{u['requests_per_s']:,.0f}/s",
            f">= {update_target:,.0f}/s",
            verdict(update_ok),
            f"p50 {u['latency_p50_ms']:.1f} ms, {u['non_2xx']} non-2xx",
        ),
        Row(
            "journaled events",
            f"{u['journal_events_per_s']:,.0f}/s",
            "= update rate",
            verdict(u["journal_matches_requests"]),
            f"{u['journal_events']:,} events for {u['ok_200']:,} updates",
        ),
        Row("GET /healthz (HTTP ceiling)", f"{h['requests_per_s']:,.0f}/s"),
        Row("updates / healthz", f"{ratio:.2f}" if ratio is not None else "n/a"),
        Row(
            "updates / Eclipse Ditto",
            f"{result['ratios']['updates_per_ditto_published']:.2f}x",
            note=f"Ditto publishes ~{DITTO_MODIFIES_PER_S:,.0f} modifies/s per instance",
        ),
        *query_rows(result, existing),
        Row(
            "  same, first page of 100, p50/p99",
            f"{qp['p50_ms']:.1f} / {qp['p99_ms']:.1f} ms",
            note="the API's default page size",
            verdict=verdict(False) if qp["wrong_answers"] else "",
        ),
        Row("?at= time travel p50", f"{t['p50_ms']:.1f} ms", note=f"{t['count']} reads"),
        Row(
            "?at= time travel p99",
            f"{t['p99_ms']:.1f} ms",
            verdict=verdict(False) if t["wrong_answers"] else "",
            note=f"{t['wrong_answers']} wrong, {t['deep_checks']} checked against history",
        ),
    ]
    return rows


def query_rows(result: dict[str, Any], existing: int) -> list[Row]:
    """The attribute query's rows: the target is judged under the update load (issue 14:
    p99 under 50 ms at 100,000 Things while 1,000 updates/s run), the idle figure beside it;
    both only when 100,000 of the run's Things exist."""
    idle, loaded = result["query"], result["query_under_load"]
    at_scale = existing >= TARGET_QUERY_AT_THINGS
    scale_note = "" if at_scale else f"; target is for 100,000, {existing:,} exist"
    rows = [
        Row(
            "attribute query, 1% match, idle, p50/p99",
            f"{idle['p50_ms']:.1f} / {idle['p99_ms']:.1f} ms",
            verdict=verdict(False) if idle["wrong_answers"] else "",
            note=f"{idle['count']} queries, {idle['items_per_answer']} items each, "
            f"{idle['wrong_answers']} wrong",
        )
    ]
    if "skipped" in loaded:
        rows.append(Row("attribute query under updates", "skipped", note=loaded["skipped"]))
        return rows
    load = loaded["load"]
    # The load must have been there: a rate well under the one asked is no answer.
    load_ok = load["updates_per_s"] >= 0.9 * load["asked_per_s"] and load["non_2xx"] == 0
    load_ok = load_ok and load["journal_matches_requests"]
    ok = loaded["p99_ms"] < TARGET_QUERY_P99_MS and loaded["wrong_answers"] == 0 and load_ok
    rows += [
        Row(
            "attribute query under updates, p50",
            f"{loaded['p50_ms']:.1f} ms",
            note=f"{loaded['count']} queries, {loaded['wrong_answers']} wrong",
        ),
        Row(
            "attribute query under updates, p99",
            f"{loaded['p99_ms']:.1f} ms",
            f"< {TARGET_QUERY_P99_MS:.0f} ms at {TARGET_QUERY_AT_THINGS:,}",
            verdict(ok) if at_scale else "",
            f"{load['asked_per_s']:,.0f} updates/s asked",
        ),
        Row(
            "  the updates meanwhile",
            f"{load['updates_per_s']:,.0f}/s",
            f">= {0.9 * load['asked_per_s']:,.0f}/s",
            verdict(load_ok),
            f"p50/p99 {load['latency_p50_ms']:.1f} / {load['latency_p99_ms']:.1f} ms, "
            f"{load['non_2xx']} non-2xx{scale_note}",
        ),
    ]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "both"], default="both", help="default: both"
    )
    parser.add_argument("--things", type=int, default=100_000, help="Things to create")
    parser.add_argument("--seconds", type=float, default=15.0, help="each rate measurement")
    parser.add_argument("--queries", type=int, default=200, help="timed reads per latency")
    parser.add_argument("--tt-things", type=int, default=200, help="Things given a history")
    parser.add_argument("--tt-changes", type=int, default=20, help="changes per such Thing")
    parser.add_argument("--tt-deep-checks", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument(
        "--client", choices=["auto", "wrk", "httpx"], default="auto", help="load generator"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument(
        "--load-rate",
        type=float,
        default=1000.0,
        help="twin updates/s sent while the loaded query is timed (default 1000)",
    )
    parser.add_argument(
        "--load-warmup", type=float, default=2.0, help="seconds of that load before the clock"
    )
    parser.add_argument(
        "--create-mode",
        choices=["batch", "single"],
        default="batch",
        help="create through POST /api/v1/things:batch (default) or one POST per Thing",
    )
    parser.add_argument(
        "--create-timeout", type=float, default=300.0, help="time bound for creation (s)"
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=120.0, help="time bound of the other loops (s)"
    )
    # A count bound for the time-bound runs, far above what the machine can do.
    parser.add_argument("--max-requests-per-s", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/registry.json"
    )
    args = parser.parse_args(argv)
    if args.things < SITES:
        parser.error(f"--things must be at least {SITES}")
    if args.tt_changes < 2:
        parser.error("--tt-changes must be at least 2 (instants lie between two changes)")
    if args.client == "auto":
        args.client = "wrk" if WRK else "httpx"
    elif args.client == "wrk" and not WRK:
        parser.error("wrk is not installed (apt-get install wrk), use --client httpx")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    result: dict[str, Any] = {
        **run_header("registry"),
        "client": args.client,
        "parameters": {
            "things": args.things,
            "seconds": args.seconds,
            "threads": THREADS if args.client == "wrk" else None,
            "connections": CONNECTIONS,
            "queries": args.queries,
            "time_travel_things": args.tt_things,
            "time_travel_changes": args.tt_changes,
            "seed": args.seed,
            "query_load_updates_per_s": args.load_rate,
            "query_load_warmup_s": args.load_warmup,
            "create_mode": args.create_mode,
        },
        "targets": {
            "sqlite_updates_per_s_min": TARGET_UPDATES_PER_S_SQLITE,
            "query_p99_ms_max": TARGET_QUERY_P99_MS,
            "query_target_things": TARGET_QUERY_AT_THINGS,
            "query_target_updates_per_s": args.load_rate,
        },
        "peers": {"eclipse_ditto_modifies_per_s_published": DITTO_MODIFIES_PER_S},
        "backends": {},
    }
    failed = False
    for backend in backends:
        try:
            result["backends"][backend] = run_backend(backend, args)
        except Exception as exc:  # one backend failing must not lose the other's figures
            failed = True
            print(f"[{backend}] FAILED: {exc}", file=sys.stderr)
            result["backends"][backend] = {"backend": backend, "error": str(exc)}
    path = write_json(args.out or RESULTS_DIR / "registry.json", result)
    for backend in backends:
        data = result["backends"][backend]
        if "error" in data:
            print(f"\n{backend}: FAILED: {data['error']}")
            continue
        print_table(
            f"registry on {backend}: {data['create']['existing']:,} of {args.things:,} Things, "
            f"{args.seconds:g}s per rate, client {args.client}",
            table(data, args.things),
        )
        failed = failed or bool(data["problems"])
    print(f"\nwrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
