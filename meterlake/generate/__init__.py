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
+ technical loss (2-6% of supply, per area); feeder head = Σ area masters + Σ 10 kV
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
from collections.abc import Callable
from pathlib import Path

from ._sim import GenerateSummary, Generator

__all__ = ["GenerateSummary", "generate"]


def generate(
    out: Path,
    meters: int,
    days: int,
    start: dt.date,
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
) -> GenerateSummary:
    """Write a synthetic landing zone for ``meters`` meters and ``days`` days to ``out``.

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
    gen = Generator(out, meters, days, start, seed, progress or (lambda _message: None))
    gen.run()
    truth_files, counts = gen.finish()
    return gen.summary(truth_files, counts)
