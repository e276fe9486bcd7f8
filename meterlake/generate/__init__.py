"""Synthetic landing zone (``meterlake generate``): a county's meters, with ground truth.

>>> from meterlake.generate import generate                       # doctest: +SKIP
>>> s = generate(Path("landing"), meters=2000, days=7, start=dt.date(2026, 1, 1))  # doctest: +SKIP
>>> s.meters_by_role, s.truth_counts["theft_bypass"]              # doctest: +SKIP

Deterministic: the same arguments give byte-identical files with identical mtimes
(``np.random.default_rng(seed)`` only; mtimes are set to simulated delivery times,
local time UTC+8). Progress goes to the ``progress`` callback; nothing is printed.
The target folder must be new or empty.

The grid
--------
Feeders (10 kV, one ``feeder_head`` meter each, CT x PT e.g. 300/5 x 10000/100 = 6000),
transformer areas (台区) of 30-400 customers with one ``area_master`` meter each (CT
from the area's peak: 100/5 ... 2000/5), and customers: households (~82%, urban and
rural), commercial (~7%), industrial (~10%), agricultural (~1.3%); ~0.4% are 10 kV
customers fed from the feeder directly (empty area_id, multiplier CT x 100). The
``meters`` argument counts all roles (at least 10). Meter ids are 13-digit strings with
leading zeros, increasing along the file order; customer ids 10-digit strings.

Loads are per 15 minutes: profile shapes (household evening peak, office and shop
hours, one/two/three-shift industry, irrigation pumping), weekday/Saturday/Sunday,
a seasonal factor by date, day-to-day and slot noise; rooftop PV on ~4% of households
(and a few commercial roofs) exports at midday onto ``reverse_kwh``. Public holidays
are not modelled.

Physics closes: area master primary kWh = Σ its customers' true primary kWh − PV export
+ technical loss (a constant no-load loss and a load loss growing with the square of
the flow, 2-6% of supply at the area's typical load); feeder head = Σ area masters + Σ 10 kV
customers + feeder loss (2-5%). Meter side = primary / true multiplier.

Registers and curves reconcile exactly as written (see ``_sim``): registers show 2
decimals (feeder heads 4: their multiplier is ~10^4); curve values are multiples of
0.0001 kWh written in their shortest form (``0.0123``, ``0.1``, ``0.0``: fixed 4-decimal
formatting costs 2.5x the CPU at county scale); Σ p1..p96 of day D =
total_kwh(D+1) − total_kwh(D) (+ register_max across a rollover) to the last digit;
Σ sharp..valley = total_kwh (until that register rolls over: each register rolls on
its own, as on a real meter). A row lost to a bad line or the cut-off is not listed as
missing in injections.csv; files.csv names it. Registers are written for ``start`` .. ``start + days`` (days + 1 freeze
dates), curves, events and purchases for ``start`` .. ``start + days − 1``.

Prepayment meters deduct each day's kWh at the CONTRACT §2 default tariffs (tiers on the
calendar-year kWh counted from ``start``; RES_TIER_TOU peak share from the sharp+peak
register change; COM_TOU per register) and add the purchases loaded; ``remaining_yuan``
is that balance rounded half-up to 0.01, ``purchase_count`` the purchases loaded.

Files
-----
``archive/archive_YYYYMMDD.csv``: a full snapshot at ``start`` (GBK, Chinese headers,
YYYYMMDD dates) and, when days >= 7, a second snapshot at ``start + days // 2``
(``.csv.gz``, UTF-8 with BOM) in which a few customers moved area.
``registers/registers_YYYYMMDD.csv[.gz]`` (freeze date), ``curves/curves_YYYYMMDD``,
``events/events_YYYYMMDD``, ``purchases/purchases_YYYYMMDD`` (data date), delivered
(mtime) a few hours after the data; when days >= 5 the curves of the third day come in
two parts ``curves_YYYYMMDD_1`` and ``_2``. Formats vary by file: UTF-8, UTF-8 with BOM
or GBK (GBK always with the Chinese ``Field.zh`` headers; some UTF-8 files too), gzip
for some, shuffled column order for some, YYYY-MM-DD or YYYYMMDD dates; timestamps are
always ``YYYY-MM-DD HH:MM:SS``. The events of the first day carry an extra column
``备注`` (the head-end's description of the event).

File-level faults: the first registers file is delivered again under
``registers_YYYYMMDD_HHMM.csv`` (resent, identical bytes); the registers frozen on
``start + 1`` arrive 3 days late as ``registers_<arrival date>_01.csv.gz``; the
registers of the last freeze date (and the curves of the last day, when days >= 2)
repeat rows of the previous file, a few with other values there (the later delivery
holds the true values); the curves file of the last day is cut off mid-row without a
trailing newline; bad rows: wrong field count and unparseable number (first registers
file), unparseable date and unknown meter id (first curves file), unknown event code
(first events file), negative purchase amount (first purchases file).

Ground truth: ``LANDING/_truth/`` (UTF-8 CSV, dates YYYY-MM-DD, empty = null)
------------------------------------------------------------------------------------
``injections.csv`` — kind, meter_id, customer_id, area_id, start_date, end_date, detail.
area_id is where the meter physically is. Kinds:

* ``theft_bypass`` (metered share 30-60% from a slot of start_date while the master
  sees the full load), ``theft_stopped`` (meter counts 0), ``theft_reversed``
  (forward stops, reverse_kwh climbs by the load); ~1% of area customers, at least 2
  of each. detail names the start time and the correlated events (COVER_OPEN,
  TERMINAL_COVER_OPEN, MAGNETIC_INTERFERENCE, VOLTAGE_LOSS, CURRENT_LOSS, REVERSE_FLOW)
  or ``none`` (~40% leave no event).
* ``multiplier_error``: the archive's multiplier differs from the true one (area
  masters and CT customers, ~1%); ``wrong_area``: the archive puts the customer on
  another area (detail) than the one it is on; ``area_change``: a genuine move, in the
  second snapshot (start_date = its date, area_id = the new area).
* ``missing_register`` (start_date = the freeze date) and ``missing_curve`` (data
  date): not delivered at all; detail ``not collected``, ``concentrator offline``
  (a whole area) or ``area master not collected``. ``curve_gap``: a curve delivered
  with a run of empty slots (detail names them).
* ``rollover``: the total register passed register_max during start_date (as read from
  the generated readings).
* ``prepay_mismatch``: the meter's balance departs from purchases − consumption from
  start_date (a purchase never loaded; or, days >= 7, a wrong price in the meter);
  ``overdraft``: first freeze date with remaining_yuan < 0 (injected or natural).
* ``outage``: an area lost power (detail: from/to); every meter of the area has a
  POWER_OFF/POWER_ON pair. ``benign_event``: an event on a honest meter (a false lead).

``files.csv`` — kind, file, line, other_file, meter_id, date, detail; file paths relative
to LANDING, line 1-based physical (header = 1). Kinds: ``resent`` (other_file = the
original), ``late``, ``overlap`` (file = earlier delivery, other_file = later),
``overlap_conflict`` (one per disagreeing key; the later file is right), ``cutoff``,
``extra_column``, and bad rows ``field_count``, ``bad_number``, ``bad_date``,
``unknown_meter``, ``unknown_code``, ``negative_amount``.

``manifest.csv`` — every landing file: file, dataset, encoding (utf-8, utf-8-sig, gbk),
compression, header (canonical, zh), date_format (empty for events and purchases, which
carry timestamps only), column_order (contract, shuffled), delivered_at (= mtime,
local), rows (data lines, bad and cut-off lines included), first_date, last_date (the
data dates the file holds), extra_columns.

``meters.csv`` — the true grid: meter_id, customer_id, role, customer_class, profile,
tariff_id, feeder_id, area_id (physical at start), area_id_end, archive_area_id,
multiplier (true), archive_multiplier, register_max, prepay, pv_kw, vacant,
typical_kwh_per_day.

``loss_daily.csv`` — level (area, feeder), id, date, supply_kwh, sales_kwh (true
customer use, theft included), export_kwh, technical_loss_kwh (primary kWh).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ._sim import GenerateSummary, Generator, org_name

__all__ = ["GenerateSummary", "generate"]


def generate(
    out: Path,
    meters: int,
    days: int,
    start: dt.date,
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
    orgs: int = 1,
) -> GenerateSummary:
    """Write a synthetic landing zone for ``meters`` meters and ``days`` days to ``out``.

    With ``orgs`` > 1, a province-like zone: ``orgs`` units (ORG01, ORG02, ...) of
    ``meters`` meters each, every unit a grid of its own (seed + k - 1, ids of its own),
    its files under ``<dataset>/ORGkk/`` as each unit's head-end delivers them, and its
    ground truth under ``_truth/ORGkk/`` (file paths relative to the landing root).

    Raises ``ValueError`` for fewer than 10 meters or 1 day, ``FileExistsError`` when
    ``out`` holds anything already.
    """
    out = Path(out)
    if isinstance(start, dt.datetime):  # a datetime is a date too; keep the calendar day
        start = start.date()
    if days < 1:
        raise ValueError(f"days: expected at least 1, found {days}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: expected a new or empty folder for the landing zone, found existing content")
    if orgs < 1:
        raise ValueError(f"orgs: expected at least 1, found {orgs}")
    say = progress or (lambda _message: None)
    if orgs == 1:
        gen = Generator(out, meters, days, start, seed, say)
        gen.run()
        truth_files, counts = gen.finish()
        return gen.summary(truth_files, counts)
    units = []
    for k in range(1, orgs + 1):
        org = org_name(k)
        tmp = out / f".{org}"  # hidden: never read as landing files, moved into place below
        gen = Generator(tmp, meters, days, start, seed + k - 1, _prefixed(say, org), org=k)
        gen.run()
        truth_files, counts = gen.finish()
        units.append(_file_unit(out, tmp, org, gen.summary(truth_files, counts)))
    first = units[0]
    return GenerateSummary(
        out=out,
        meters=sum(u.meters for u in units),
        meters_by_role={r: sum(u.meters_by_role[r] for u in units) for r in first.meters_by_role},
        days=days,
        start=start,
        seed=seed,
        files=sorted(f for u in units for f in u.files),
        truth_files=[f for u in units for f in u.truth_files],
        truth_counts={
            k: sum(u.truth_counts.get(k, 0) for u in units) for k in {k for u in units for k in u.truth_counts}
        },
    )


def _prefixed(say: Callable[[str], None], org: str) -> Callable[[str], None]:
    return lambda message: say(f"{org} {message}")


def _file_unit(out: Path, tmp: Path, org: str, summary: GenerateSummary) -> GenerateSummary:
    """Move one unit's files from ``tmp`` to ``out/<dataset>/<org>/`` (mtimes kept) and its truth to ``_truth/<org>/``."""

    def moved(rel: str) -> str:
        dataset, _, rest = rel.partition("/")
        return f"{dataset}/{org}/{rest}"

    for rel in summary.files:
        dest = out / moved(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dest)  # a rename keeps the delivery time (mtime)
    truth = out / "_truth" / org
    truth.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp / "_truth", truth)
    for name, cols in (("files.csv", ("file", "other_file")), ("manifest.csv", ("file",))):
        path = truth / name
        if path.exists():
            frame = pl.read_csv(path, infer_schema=False)
            frame = frame.with_columns(
                pl.col(c).str.replace(r"^([^/]+)/", f"$1/{org}/") for c in cols if c in frame.columns
            )
            frame.write_csv(path)
    shutil.rmtree(tmp)
    summary.files = [moved(f) for f in summary.files]
    summary.truth_files = [f"_truth/{org}/{f.removeprefix('_truth/')}" for f in summary.truth_files]
    return summary
