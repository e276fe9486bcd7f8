"""Area energy balance on the 96-point curves (台区电量平衡): theft, multiplier and 户变 errors.

Pure: polars and numpy in, polars out; no file I/O. The stage hands :func:`day_states`
the clean curves of the days it has read (meter side, raw: a null slot was not
collected, so estimated slots never enter the fit) and those days' ``meter_daily`` rows
(area, role, multiplier, daily registers); each day is fitted on its own
(:func:`day_state`). It keeps the small result in the lake, and hands
:func:`balance_window` the kept days of a window. :func:`balance` does both in memory.

The model
---------
For an area, a customer i and every fitted slot t (a 15-minute interval of a day d)::

    loss_t = master_t - Σ_j r_j,t
           = γ_i · r_i,t + τ_i · load_t + c_d · load_t² / mean_d(load) + Σ_k a_d,k · b_k(t) + ε_t

``r_i,t`` is the customer's recorded forward kWh (primary side: curve x multiplier),
``load_t = Σ_j r_j,t`` the area's recorded load, ``b_k`` twelve smooth periodic bumps
over the time of day whose weights ``a_d,k`` are free on every day. An area's technical
loss is a no-load (iron) loss, constant, which the bumps take, and a load (copper) loss
growing with the square of the current, which ``c_d`` takes (free on every day, in
areas of ``shapes_min_customers`` customers up). The bumps take too whatever else the
day's loss does smoothly and the customers' curves cannot tell apart: the PV export
the master sees and the forward curves do not, a neighbour's stopped or tampered meter,
a filled curve, the common shape of a profile. What is left to γ is the customer's own
15-minute variation: a meter recording a share a of its use leaves exactly
``γ = (1 + τ)(1/a − 1)`` of it in the loss (the master saw the rest, and the technical
loss grows by the marginal rate τ with the true load; with the load-loss term τ is the
area's marginal loss, the loss's slope on the load without that term). A multiplier booked at half
the true one gives 1 + τ, at twice it −(1 + τ)/2, a customer booked here but fed from
another area −(1 + τ) (its kWh are subtracted, the master never saw them), and the same
customer's curve explains the other area's loss with 1 + τ there. Each coefficient is
read against the area's median (:func:`window_coefficients`): the true-to-recorded
ratio is ``1 + (γ − median)/(1 + τ)``, the unrecorded kWh ``(ratio − 1) ·`` recorded.

Two more statistics per customer: ``night`` adds its night slots (22:00-06:00) as a
third variable (a bypass switched in at night records a share there only), and
``days`` the day-by-day t of γ against the customer's own window γ, positive parts
(capped) squared and summed (a bypass on some days only averages out in the window's γ
but not there). A fourth reads no loss: ``step``, a step down within the window in the
customer's recorded night share or its share of the area's load (below, "The step
statistic").

Bounded cost: sufficient statistics per day
-------------------------------------------
The bumps are per day, so clearing them is a projection of that day's 96 slots; the
normal equations of each customer's three-variable fit are then sums over days of
cross products (:data:`CUSTOMER_STATE`: 7 numbers per customer and day, and the
cross products with the day's selected customers, below) and of the
area's (:data:`AREA_STATE`: the loss and load sums of squares, and the cleared loss
and load curves themselves, which the mapping test reads). A day's statistics come
from that day's curves only; a window sums its days, so memory is bounded by one day
whatever the window, and a county day costs one pass over its curves. Within the day,
the curves are read once into numpy slot columns (after the narrow members frame is
joined and sorted) and the members are gathered, weighted and fitted a range of whole
areas at a time (:data:`CHUNK_ROWS` rows), so beyond the day's curves memory is bounded
by one range (one per thread where the caller fits several at once: :data:`RangeMap`;
the stage fits two: the county day's 61 ranges in 2.7-3.3 s of wall against 3.4-4.2
one after another, 2-core machine at load 2-4, about 0.5 s more CPU).
Each area-day
counts with the inverse of its residual variance (a day with an outage or a tampered
neighbour counts less), each slot with 1 / (the area's smoothed load)^p. Measured on
the county day (500,000 meters, 468,551 customers in 3,393 fitted areas; 2-core
machine shared with other sessions, load 3-7): the day's statistics about 4.7 s of CPU
and a peak RSS of 0.91 GB in a process of their own (4.1 s and 0.84 GB before the
selected customers' cross products were kept; with the whole day's member curves
gathered into one array: 9.4 s, and 8.4 s and 1.63 GB before); on a generated day of 100,000
meters a 14-day window from the kept days took 3.5-3.9 s of CPU with its mapping test,
peak RSS 0.74 GB.

A window's figures for an area are a function of that area's rows alone, to the last
bit: every sum over rows is its group's own, in a fixed order (each customer's days in
date order, an area-day's selected customers in their order, an area-day's customers
in meter order: :func:`_group_sums`), and the divisions are numpy's or read frames
whose columns hold their values (:func:`materialized`). So a window may be fitted a
range of whole areas at a time (the stage does, beyond a number of customer-days) and
give exactly the whole window's figures, and two fits of one window give the same bits.
(Before, polars's group-bys added a group's terms in an order that depended on the other
rows present, and divided by a column held as one repeated value through its
reciprocal: coefficients moved by up to 1e-9 relative from fit to fit, and an area
fitted alone differed from the same area fitted beside others.)

Slots: a day fits the slots where the master and every customer were collected. A
customer-day holding less than ``fill_max_share`` of the master's energy gets its
uncollected slots from its daily register (spread like the area's load); a larger
customer's gap leaves those slots out, and a day without such slots leaves the day
out: once the day's level is free, a day of registers alone says nothing.

The estimator, chosen by measurement
------------------------------------
Non-negative least squares is ruled out by the model itself: a too-large multiplier
and a wrong area need negative coefficients, so it is signed least squares. Measured on
a generated county (``meterlake generate --meters 20000 --days 30 --seed 7``: 143
areas, 19,700 customers, 99 partial thieves, 24 wrong multipliers, 40 wrong areas, 415
false-data injectors and 198 blunt thieves beside them), the 14-day window ending
2026-01-30, every customer ranked by the statistic (ROC AUC over the customers; top 5
= the thief among the 5 highest of its area; shared 2-core machine)::

    estimator (window ending 2026-01-30)                      partial AUC   top 5    mult. rank 1
    one least squares of every customer per window (before)   0.589        16 / 99   -
    per-day bumps, one customer at a time + load              0.663        24 / 99   3 / 24
      + night and some-days statistics (max of the three)     0.720        28 / 99
      + 3 common shapes per day (default)                     0.738        29 / 99   16 / 24
      + 6 common shapes                                       0.751        28 / 99   14 / 24

(The first took 360 s for this window, this one 9 s for its 14 day-states and 3 s for
the window and its mapping test.) Without the common shapes a profile's narrow evening peak, left by
the bumps, carries another meter's misfit into every household's coefficient in
proportion to 1 / its size: the areas' median coefficients spread with a standard
deviation of 0.42 (0.10 with them) and 479 CT customers read as multiplier suspects
(156 with them; the rank-1 of each area is a true one in 16 of 24 areas). On the
earlier zone, other choices moved the t's AUC by about 0.01: slot weights 1 / load^p
with p = 0, 1, 2: 0.652, 0.662, 0.672; a Huber step on each day's residual 0.674 (but it
biases a small area's estimate, where one thief is most of the residual); 8, 12, 16
bumps: 0.625, 0.662, 0.629; fitting all customers jointly (every pair's cross products:
0.15 GB a county day) 0.700 against 0.693 one at a time. Defaults: 12 bumps, 3 shapes,
p = 1, no Huber step, windows of 14 days (21 days: 0.798 against 0.784 on a zone
generated without injectors and blunt thieves, 28: 0.769).

Where the loss noise comes from, measured: a zone of 4,000 meters x 7 days (seed 7),
each area-day's loss after its 12 bumps and a load term, generated with one source
switched off at a time (the same loads otherwise). Mean residual variance per slot
0.163 kWh^2 (median area-day 0.14 kWh per slot); switching off the wrong multipliers
and areas removes 0.059 (the wrong areas most: a customer fed from this area but
booked in another leaves its whole curve unexplained here, 0.047 of 0.059 on the
generator with the load loss), the filled curves of uncollected customers 0.041, the
h1-h6 injectors 0.030, the partial thieves themselves 0.020, the blunt thieves 0.009,
PV export 0.009; with all six off 0.0005 kWh^2 is left (the meters' resolution and the
outages). The noise is the other faults, not the meters or the physics: a joint fit
could take the part of it that other customers' curves carry (wrong multipliers,
partial thieves, part of the blunt and injected), not the rest (an invisible wrong-area
customer, a filled curve, a flattened or zeroed day). Against that, a share a recorded
by a household using 2-10 kWh a day shows only through its 15-minute variation, about
0.4 x (1 - a) of its slot use, 0.005-0.03 kWh; a night bypass in 8 low hours only.

With the generator's technical loss made physical (no-load plus a load loss growing
with the square of the flow), a linear load term leaves 0.0059 kWh^2 per slot in the
zone with every fault off (median area-day 0.045 kWh per slot); the load-loss term
takes it back to 0.0005. Measured on the 20,000-meter zone of seed 7 on that generator,
the balance alone (4 windows ending 2026-01-14, -21, -28, -30; every customer's best
max(t, night t, days t) over the windows; AUC over the customers, top 5 in its booked
area, multipliers and wrong areas at rank 1 of their area in some window)::

    estimator                                        partial AUC  top 5    mult.    areas
    bumps, 3 shapes, load, p = 1 (before)            0.793        32 / 99  18 / 24  35 / 40
      + load-loss term (default)                     0.808        38 / 99  20 / 24  36 / 40
      + load-loss term, p = 0                        0.772        35 / 99  18 / 24  36 / 40
      + load-loss term, p = 2                        0.821        37 / 99  19 / 24  36 / 40
      + load-loss term, 21-day windows (3)           0.815        41 / 99  18 / 24  35 / 40
      + load-loss term, 28-day windows (2)           0.776        37 / 99  18 / 24  35 / 40
    seed 11: before                                  0.809        34 / 99  23 / 24  35 / 40
    seed 11: + load-loss term (default)              0.841        45 / 99  20 / 24  35 / 40

The load-loss term costs some wrong multipliers on seed 11 (a large CT customer's curve
is much of the area's load, so of its square too); through loss_diagnosis they stay at
rank 1 in 21 and 22 of 24 areas (seeds 11 and 7).
Combining the three statistics otherwise (the root of their positive parts squared,
their sum) moves the AUC by less than 0.003. By mode, the partial thieves above the
95th percentile of the other customers: constant 16 / 30, some days 17 / 34, night
only 7 / 35; by share recorded: below 0.25 13 / 20, 0.75 and up 1 / 13.

The others' misfit: the loss cleaned of the customers that stand out
----------------------------------------------------------------------
Each customer is fitted one at a time against the area's loss, so every other
customer's misfit (a wrong multiplier, a customer booked here but fed from elsewhere,
another thief, a false-data injector) is noise in its fit, and a little of it leaks
into its coefficient. Each area-day therefore selects the ``clean_customers`` (4)
customers whose curves stand out most that day (``|ry − median·rr| / √rr``, the day's
t up to the area's residual scale) and keeps every customer's cross products with
their cleared curves, all slots and night slots (:func:`_selected_cross`: 2 x 4 more
numbers per customer-day). The window fits once as before; then, for the selected
customers that stand out in the window too (robust t of ``clean_min_t`` = 2 up, either
sign, in areas of ``tau_min_customers`` up), their part ``(γ_s − median) · r_s`` is
taken out of the other customers' loss (a selected customer keeps its own part) and the
window is fitted again (:func:`cleaned_loss`), ``clean_passes`` (2) times, each pass
cleaning with the previous pass's coefficients. Nothing else is read: the new sums
follow from the kept cross products.

Measured on the two generated zones of 20,000 meters x 30 days (seeds 7 and 11; the
balance alone as above, windows ending 2026-01-11, -18, -25, -30, every customer's
best max(t, night t, days t); wrong multipliers and areas at rank 1 of their area's
findings in some window)::

    window fit (seed 7 | seed 11)              partial AUC    top 5           mult. r1       areas r1
    one at a time (before)                     0.812 | 0.834  37 | 48 / 99    20 | 21 / 24   36 | 34 / 40
    joint ridge fit of all customers, λ 0.1    0.821 |   -    43 |  - / 99    21 |  - / 24   36 |  - / 40
      + the wrong-area customers (truth) added
        to the area that feeds them            0.825 |   -    45 |  - / 99    21 |  - / 24   37 |  - / 40
    all customers' one-at-a-time parts out     0.783 |   -    33 |  - / 99    12 |  - / 24   30 |  - / 40
    joint ridge, only the day's 8 taken out    0.843 |   -    42 |  - / 99    21 |  - / 24   37 |  - / 40
    the day's 4 that stand out, 1 pass         0.830 | 0.862  40 | 55 / 99    20 | 21 / 24   37 | 37 / 40
      2 passes (default)                       0.846 | 0.864  43 | 58 / 99    20 | 22 / 24   37 | 38 / 40
      3 passes                                 0.841 | 0.863  40 | 60 / 99    21 | 21 / 24   37 | 38 / 40
      8 a day, 2 passes                        0.845 | 0.871  41 | 57 / 99    19 | 22 / 24   37 | 38 / 40
      2 a day / 6 a day, 1 pass                0.826 / 0.828 (seed 7), top 5 42 / 42
      day weights from the cleaned loss        0.849 | 0.871  41 | 54 / 99    20 | 22 / 24   37 | 38 / 40

Through the whole pipeline (``meterlake run`` of the 30 days, then ``meterlake
evaluate``: theft from the anomalies ranking, in the top 5 of its area; multipliers and
wrong areas from loss_diagnosis, rank 1 of their area), before -> after::

    seed 7                       ROC AUC          area hits
    partial thefts               0.816 -> 0.836   36 -> 38 / 99
    blunt thefts                 0.978 -> 0.979   175 -> 176 / 198
    wrong multipliers            0.978 -> 0.978   22 -> 22 / 24
    wrong areas                  0.986 -> 0.986   36 -> 37 / 40
    seed 11
    partial thefts               0.804 -> 0.837   39 -> 43 / 99
    blunt thefts                 0.975 -> 0.976   170 -> 171 / 198
    wrong multipliers            0.937 -> 0.958   21 -> 22 / 24
    wrong areas                  0.961 -> 0.986   34 -> 38 / 40

The injectors keep their area hits; two AUCs fall, each by one attacker that the
observer misses and the balance listed only weakly before (h1 of seed 7, 0.982 ->
0.950; h5 of seed 11, 0.946 -> 0.904: a flattened curve that steals nothing, whose
coefficient stood above a median pulled down by a wrong multiplier's misfit). The
partial thefts stay far from an AUC of 0.95 and 80 % in the top 5: in the ranking the
missed ones sit below honest meters that other indicators score, and 23 of 99 (seed 7;
17 of them night-only) have no balance finding at all.

A joint fit of every customer (the area's n x n cross products summed over the days,
ridge towards the area's common coefficient; 0.1 of each diagonal, 0.01 and 1 give
0.821 and 0.814) gains little, and adding the customers fed from elsewhere (taken from
the truth, an upper bound) hardly more: most customers' coefficients are noise, and
taking all of them out adds their estimation noise to everyone's loss (the third row).
What helps is taking out the few large misfits, which also need only 8 numbers per
customer-day instead of an n x n matrix per area-day (0.15 GB a county day). The night
thieves remain the weak mode (6 of 35 in their area's top 5 on seed 7, against 18 of 30
steady and 19 of 34 some-days), and shares recorded above 0.75 (3 of 12). Reading the
night coefficient against the area's median instead of against the customer's own
all-slot coefficient (a smaller standard error) gives 0.837 | 0.869, top 5 42 | 57: not
kept. With the cleaning, the other settings were measured again: slot weights
1 / load^2 0.859 | 0.888, top 5 42 | 59, but wrong areas at rank 1 37 | 35 (1 / load^1.5:
0.853 | 0.865, 43 | 57); 21-day windows 0.849 | 0.872, 43 | 57. Neither gains on both
seeds beyond the noise between them: p = 1 and 14 days stay.

The night statistic: its spread and its share
---------------------------------------------
Two gates kept night-only bypasses out of the findings. Each robust t is scaled by its
area's MAD, but never by less than 1 (:func:`coefficients`). The steady t's scaled MAD
is about 1 in most areas; the night t's is narrower (median 0.64 over the areas of both
generated zones, 10 % of them below 0.44), so the floor shrank it by about 1.5 against
the other two: the 95th percentile over all customers is 1.1 for the night t against
1.7 for the steady t. The theft evidence now reads the night t against its area's own
spread, floored at ``night_spread_floor`` (0.5; in an area whose spread is 1 or more
nothing changes). The multiplier and mapping readings, which set aside a customer with
a night share, keep the night t floored at 1: with the narrower spread two windows'
findings of true wrong multipliers of seed 7 would be set aside, and one of them is a
hit (rank 1 of its area by the balance alone 20 -> 19 of 24). Second, a candidate was
listed only when its unrecorded kWh were ``theft_min_share`` (10 %) of its whole use; a
bypass in the 8 night hours takes a share of the night's use only, often 5-8 % of the
day's (a meter recording 64 % at night: 0.36 of a third of its use). Its night part is
now listed on its share of the night's use (the night coefficient's floor of 0.25
already means 20 % there). Measured as above (the windows' coefficients from the kept
days, the findings and the whole ranking recomputed from them; ``meterlake evaluate``;
partial AUC and partial thieves in their area's top 5, the balance alone first)::

                                       seed 7                     seed 11
                                       alone        ranking       alone        ranking
    before                             0.787  43    0.836  38     0.830  54    0.837  43
    night t floor 0.75                 0.796  44    0.845  38     0.835  55    0.842  44
    night t floor 0.5                  0.795  45    0.844  39     0.834  54    0.841  44
    night t floor 0.3                  0.795  45    0.844  39     0.834  54    0.841  44
    night t x 1.5 everywhere           0.795  45    0.844  40     0.834  56    0.841  46
    floor 0.5, some-days t's too       0.795  43    0.839  38     0.830  51    0.837  42
    night share, floor 1               0.796  43    0.845  38     0.862  58    0.869  46
    night share, floor 0.5 (default)   0.814  47    0.863  40     0.869  58    0.876  48

Night-only thieves listed at all, with the floor: 19 of 35 (seed 7) and 19 of 36 (seed
11), with the night share too 23 and 26; in their area's top 5 by the balance alone
6 -> 10 and 11 -> 16. The
theft candidates of the month's 4 windows grow from 3,747 to 4,268 (seed 7). Blunt
thefts, the injectors, multipliers and wrong areas keep their hits in every row but
the sixth (blunt 171 -> 169 on seed 11); AUCs move by at most 0.001. A flat factor of
1.5 does about as well as the floor but is a number fitted to these zones; the floor
follows each area's own spread. Scaling the some-days statistic down by its own upper
quantile (its 95th percentile is 2.7-2.8, heavier-tailed than the steady t's) moved
partial thieves in the top 5 by +4 | +5 through the ranking but cost AUC on seed 7
(0.836 -> 0.828): not kept. Still missed: 12 | 10 night thieves, 10 | 9 of them with a
night t under 2 in every window (most recording more than half at night, or with a
night coefficient far above 1/a - 1 and a standard error larger still).

The some-days statistic: each day against the customer's own days
-----------------------------------------------------------------
Read against the area's median, the day-by-day t counted a steady coefficient a little
off the median (the others' misfit that every coefficient carries) on every day: a
customer whose window t is m·√14 has days' t of mean m, and Σ (t₊)² grows with n·m², so
the some-days statistic read a small steady offset more strongly than the steady t
itself and was heavy-tailed (99th percentile over the honest customers 7.0 | 5.5 on the
two zones, against 4.0 for the steady t; of the honest customers with the balance's
z >= 4, 533 of 675 on seed 7 came from it). Each day's t is now read against the
customer's own window coefficient (do some days stand out from its other days?), the
steady t keeps the question whether all of them do, and a day counts up to a t of
``days_t_cap`` (3; the null mean and variance of min(Z₊, 3)², 0.4975 and 1.198, from
:func:`capped_square_moments`): a theft on some days is many days standing out, not one
day standing far out. The unrecorded kWh of the days that stand out (t >= 2) are still
read against the area's median. Measured as above (the windows' coefficients from the
kept days of the two zones, the findings and the ranking's balance points recomputed;
partial thieves: ROC AUC and in their area's top 5; blunt thieves in the top 5; the
seven injector kinds' top-5 hits together; honest customers with the balance's z >= 4,
and the 99th percentile of their z)::

                                        seed 7                              seed 11
                                        partial     blunt  inj  z>=4 q99    partial     blunt  inj  z>=4 q99
    against the median (before)         0.857  40   175    92   675  7.4    0.877  50   171    92   490  5.5
    days' t capped at 3                 0.854  41   176    92               0.878  51   171    92
    days' t capped at 4                 0.858  40   175    92               0.877  52   171    92
    each area-day's t over its spread,
      capped at 3                       0.847  41   176    92               0.881  53   171    92
    against its own coefficient         0.848  40   178    92               0.880  50   172    92
      capped at 3 (default)             0.858  41   178    92   359  5.4    0.882  51   172    92   223  4.1
      capped at 2.5                     0.851  42   179    92               0.878  51   173    92
      capped at 3, balance points 3 x   0.858  44   177    90               0.882  52   170    92

The honest customers the balance lists at z >= 4 halve (675 -> 359, 490 -> 223), but the
partial thieves gain little: their own some-days statistic had counted their steady
share too. Other settings measured at the same time, on the statistics before this
change: theft evidence listed from a robust t of 1.5 or 1 (report_t 2): partial AUC
0.858 and 0.856 (seed 7), top 5 40 both; a window of the whole 30 days in place of, or
beside, the last 14-day window: 0.851 | 0.874 and 0.843 | 0.876, top 5 41 | 50 and 40 |
49, blunt 174 | 167 and 174 | 170.

What the partial thieves still miss, after this change (seed 7 | seed 11): 58 | 48 of
99 are not in their area's top 5. 19 | 16 have no balance finding at all (mostly
night-only: a bypass of a flat night load leaves little 15-minute variation once each
day's smooth terms are cleared). 22 | 17 have 5 or more other thieves above them in their
area (blunt thieves mostly, then injectors and other partial thieves): in the top 5 only
at another thief's cost. 28 | 19 have a finding and fewer than 5 thieves above them, below
honest customers (median 8 | 5 of them above) that the balance or the observer scores
higher. With a perfect ranking the ceiling is 98 | 98 of 99 putting partial thieves
first (blunt 178 | 183 of 198), 83 | 90 putting blunt thieves first (blunt 193 | 191):
80 % in the top 5 with the blunt thieves no worse needs the balance to rank nearly every
partial thief above every honest customer of its area, which no setting measured here
approaches.

The step statistic: what the customer records against its own days
--------------------------------------------------------------------
Of the partial thieves the three statistics leave unlisted, most record more than half
at night: a flat night load of 0.4-1.6 kWh over 32 slots has almost no 15-minute
variation once each day's smooth terms are cleared (its night coefficient's standard
error is larger than 1/a - 1), and the level it leaves in the loss is the same shape as
every neighbour's night load, so the loss cannot say whose it is. What such a bypass
does change is the customer's own record from the day it is switched in: the share of
its recorded energy in the night slots falls, and a meter recording a share of all its
use falls in its share of the area's recorded load. :func:`share_steps` reads both
daily series from the kept day statistics (``kwh``, ``night_kwh``; nothing more is kept
or read): for every split of the window's days, ``step_min_days`` (2) up either side, the
t of mean(before) - mean(after) over their pooled day-to-day spread, floored at
``step_spread_floor`` (0.02 of night share; 2 % of the customer's mean area share); the
larger series' best split is the step t, robust-scaled in its area like the others, and
a fourth statistic of the theft evidence (z = the largest of the four). A customer is
listed by it when its drop (1 - after / before) is ``theft_min_share`` up; what the drop
leaves unrecorded after the split (recorded x drop / (1 - drop)) is its unrecorded kWh
when larger than the others'. The other indicators' drop and TOU tests need 14 days of
history before a change; inside a 14-day window this one needs 2 days either side: a
day on which all the area's customers use less (weather, a holiday) moves no one's share
of the area. Not measured: behaviour that really changes (a household away for a week,
a new heater at night) lists a customer here too; the generated zones have none.

Measured through the ranking on the two generated zones (20,000 meters x 30 days, seeds 7
| 11): the windows' findings recomputed from the kept day statistics and the anomalies
of the 30 dates rescored with only the balance points changed (this reproduces the
pipeline's figures exactly for the code before), ``meterlake evaluate``'s figures:
partial thieves' ROC AUC and hits in their area's top 5, blunt thieves' hits (AUC)::

    theft evidence                               partial, seed 7 | 11       blunt, seed 7 | 11
    before                                       0.854  41 | 0.877  51      178 (0.979) | 172 (0.976)
    t's standard errors floored at 0.05 (misfit) 0.846  41 | 0.879  49      178 | 172
      floored at 0.1                             0.838  42 | 0.853  45      178 | 173
      floored at 0.2                             0.816  40 | 0.839  41      178 | 172
      0.1, in the score only (listing as before) 0.853  42 | 0.873  46      178 | 173
    days' coefficients floored at 0.3            0.844  42 | 0.872  51      179 | 173
    some-days t two-sided (|t|), capped at 2.5   0.859  42 | 0.872  52      177 | 172
    report_t 1.5 and no cap of 20 per area       0.877  41 | 0.882  51      178 (0.976) | 172 (0.974)
    + step t (default)                           0.895  45 | 0.898  59      178 (0.987) | 173 (0.979)
    + step t x 0.75                              0.894  45 | 0.907  55      177 | 172
    + step t x 0.75, 3 days either side          0.897  45 | 0.902  56      178 | 172
    + step t x 0.75, spread floor 0.04           0.878  42 | 0.898  52      177 | 173

The honest customers the balance lists highly are mostly large (median 102 kWh a day among
those with z >= 3 on seed 7, against 7.8 for all): a floor on the standard error for the
model's misfit ranks the balance alone better (ROC AUC of its z 0.856 -> 0.865 at 0.05-0.1)
but lists fewer partial thieves and ranks the large ones lower, so the ranking loses.
Listing more (report_t 1.5) only breaks ties of unlisted thieves against the 87 % of
customers that score nothing, at the blunt thieves' AUC. A daily balance (the area's
daily loss regressed on each customer's daily kWh, its load and its square over a
14-day window) separates partial thieves from the others with a ROC AUC of 0.64 alone
(seed 7; a night level from the registers, the area's valley-period loss per hour less
that of its other hours regressed on each customer's valley kWh over the 30 days: 0.61
for the night thieves): the day-to-day loss is too noisy for one household. The step statistic alone, over the 30 days, separates
the night thieves from honest customers with a ROC AUC of 0.954 (seed 7; median t 15.8
against a 99th percentile of 3.5 for the honest), constant shares 0.885 on the area
share; it sees nothing of a theft from the first day (13 of 99 on seed 7) or of one
on random days (their some-days statistic does). Through the whole pipeline (loss and
anomalies rerun on the validated lakes, ``meterlake evaluate``) the default row is
reproduced exactly; multipliers and wrong areas keep 22 | 22 of 24 and 37 | 38 of 40 at
rank 1 (the step reads no coefficient), the injectors' AUCs move by at most 0.002 and
their hits not at all (benchmarks/README.md, "Partial thefts: a step down in what the
customer records"). Cost: about 0.17 s of CPU per 14-day window of 20,000 customers,
all splits of all customers at once (prefix sums over the rows sorted by customer and
date); the loss stage of the month 21.3-22.9 s with main, 21.9-22.6 s with it.

The step over the customer's month
----------------------------------
A step inside a 14-day window has few days on one side when the theft began near the
window's edge, and none once the window has moved past it. The step statistic now reads
the customer's kept days over ``step_days`` (28) up to the window's end (the day states
already hold ``kwh`` and ``night_kwh``; the fit still reads the window's 14 days), and the
kWh its drop leaves unrecorded count the window's days only, so the evidence stays per
window. Measured on the two generated zones (20,000 meters x 30 days, seeds 7 | 11): the
windows' coefficients from the kept day states, the anomalies of the 30 dates rescored
with only the balance points changed (the before row reproduces ``meterlake evaluate``
exactly); partial thieves' ROC AUC, hits in their area's top 5 and hits with the other
injected thieves of their area set apart (``meterlake evaluate``'s "hits, thieves
apart"); blunt thieves' AUC and hits; honest customers (no injected theft) with a balance
theft finding in some window::

    step statistic's days          partial, seed 7 | 11              blunt, seed 7 | 11      honest listed
    the window's 14 (before)       0.895 45 64 | 0.898 59 74         0.987 178 | 0.979 173   1753 | 1659
    21                             0.894 47 64 |   -                 0.988 178 |   -         1437 |   -
    28 (default)                   0.901 47 67 | 0.917 59 78         0.985 179 | 0.979 175   1358 | 1423
    30                             0.906 47 67 | 0.916 59 78         0.985 179 | 0.980 175   1335 | 1380
    28, 3 days either side         0.903 49 69 | 0.923 59 78         0.987 179 | 0.977 174   1344 | 1382

On a held-out zone generated afterwards the same way (seed 13), the window's 14 days ->
28: partial 0.881 50 65 -> 0.879 53 66, blunt 0.985 181 -> 0.987 182, honest listed 1751
-> 1431: more partial thieves in their area's top 5 and fewer honest customers listed on
all three zones, the partial AUC up on two (a thief listed at all beats the 85 % of
customers that score nothing) and level on the third. Injectors, multipliers and wrong areas do not move (the step reads no
coefficient). 28 days is four whole weeks; 30 and 3 days either side were not kept for
gains within the seeds' noise.

Tried at the same time on seed 7 and dropped (the balance alone: every customer's best
statistic over the four windows, ROC AUC of the partial thieves against the customers
without an injected theft, and partial thieves with fewer than 5 such customers above
them in their area; before 0.911 and 61):

- each statistic scaled by its spread in the customer's size class (decades of kWh a
  day over the window's customers: scaled MAD, or 99th percentile against the zone's):
  through the ranking 0.896-0.897 and 44-47 top-5 hits against 0.895 and 45. The honest
  customers the balance lists at z >= 4 by the steady, night or some-days statistic are
  large (median 180-365 kWh a day), but the partial thieves' misses sit behind small and
  large honest customers alike;
- the statistics combined otherwise: the root of their positive parts squared 0.917 and
  63; each read against its own 95th or 99th percentile over the window's customers
  first, 0.912-0.918 and 60-63 (its 99.9th, 0.872-0.882);
- a fifth statistic, each day's t (against the customer's own coefficient, capped at 3)
  weighted by how far its share of the area's load fell below its mean that day: well
  calibrated on the honest (99th percentile 2.5, 99.9th 3.4) and some-days thieves' median
  2.5, but alone 0.718 and with the other four 0.907 and 61: the days a household records
  less are not told apart from its ordinary days well enough to add to the some-days t.

What the partial thieves miss after this change (seed 7, through the ranking): 47 of 99
in their area's top 5; 20 more have fewer than 5 customers without injected theft above
them (in the top 5 only at another thief's cost); 20 sit behind honest customers with
balance findings of their own (median 12 of them; the thieves' z 2-6, recording 41-86 %);
12 have no finding at all (6 some days, 4 night only; recorded shares 0.57-0.9 but for a
household of 0.4 kWh a day recording 26 % and a customer of 325 kWh a day recording 13 % at
night).

Weak evidence: ranked, not listed
---------------------------------
A theft candidate is listed when one statistic reaches ``report_t`` and the energy it
leaves unrecorded is ``theft_min_share`` of the customer's use; everything else scored
nothing, and in the anomalies ranking 85 % of the customers score nothing. Ranking every
customer by its largest z over the month's four windows separates the partial thieves
from the customers without injected theft with a ROC AUC of 0.926 (seed 7), the
pipeline's ranking with 0.901: the partial thieves with no finding (z 0.8-2.3, most
recording more than half) tied with the customers scoring nothing. A customer whose z
reaches ``weak_t`` (1.5) but that the rules leave out is now kept as a weak finding:
score ``weak_weight`` (0.25) x z / (3 x min_t), so at most 0.25 (never a theft case,
which needs 1/3), ranked after the area's other theft candidates and the daily
diagnosis's, not cut by the area's cap of 20 (with the cap, which cuts exactly these:
0.908 against 0.929 on seed 7), giving way to the daily diagnosis's finding of the same
meter; the monthly work list names none of them as a suspect. Measured on the two
generated zones (seed 7 | 11), the four windows' coefficients from the kept day states,
the findings and the balance points recomputed and the anomalies of the 30 dates
rescored (the before row reproduces the pipeline's figures of seed 7 exactly); partial
thieves' ROC AUC, hits in their area's top 5 and hits with
the other thieves set apart; blunt thieves' AUC and hits; the injectors' AUC::

    unlisted evidence                      partial, seed 7 | 11          blunt, seed 7 | 11      injectors
    nothing (before)                       0.901 47 67 | 0.921 59 78     0.985 179 | 0.985 175   0.986 | 0.986
    z >= 1.5 at 0.25 (default)             0.929 47 67 | 0.924 59 78     0.985 179 | 0.984 175   0.984 | 0.985
    z >= 1.0 at 0.25                       0.929 47 67 | 0.928 59 78     0.986 179 | 0.985 175   0.987 | 0.987
    z >= 2.0 at 0.05-0.3                   0.912 47 67 |   -             0.986 179 |   -         0.986 |   -
    z >= 1.5 at 0.1                        0.924 47 67 | 0.925 59 78     0.984 179 | 0.985 175   0.984 | 0.985
    z >= 1.5 at 1 (a listed one's score)   0.926 46 62 |   -             0.982 179 |   -         0.985 |   -

Listing from z 1.0 keeps 8,140 customers a window on seed 7 against 3,906 from 1.5 (1,126
listed): 1.5, for the rows. Nothing moves into an area's top 5: a weak finding only orders
the customers that scored nothing. Through the pipeline the figures are in
benchmarks/README.md ("2026-12-07: partial thefts, the balance's weak evidence"). Measured at the same
time and dropped:

- the four statistics combined as the root of their positive parts squared: 0.902 49 69 |
  0.922 59 79, but blunt 179 | 175 -> 179 | 172;
- each window's z combined with the earlier windows' (Stouffer, sum over root of their
  number): 0.904 51 71 | 0.921 61 82, blunt 176 | 171: more partial thieves in the top 5,
  as many blunt thieves out;
- the area master as observer (transforms/observer.py) already scores 24 of the 99
  partial thieves of seed 7 (14 of 34 some-days, 8 of 30 constant, 2 of 35 night-only;
  recording 11-58 %), none of the 12 without a balance finding: what it sees of a partial
  theft is in the ranking already (weight 4);
- a step up in the area's daily loss (master less the customers' registers, over the
  master) at the customer's own best split of its area share: ROC AUC 0.54 alone (the
  honest customers' 99th percentile 5.9: every other thief's start is in the same
  series), with the share step 0.69 against 0.84 for the share step alone.

Peeling, the customer's own scale, the share: measured and dropped
-------------------------------------------------------------------
The anomalies ranking reads the four statistics summed (transforms/anomaly.py, "The four
statistics summed"); what the balance itself computes did not change. Measured at the
same time on the two generated zones (seeds 7 | 11, the four windows' coefficients from
the kept day states, the anomalies of the 30 dates rescored; partial thieves' ROC AUC and
area top-5 hits, blunt thieves' hits; before 0.930 47 | 0.925 59, blunt 179 | 175;
the ranking as it ships, with the statistics summed, in brackets):

- peeling (fit, take the strongest customers' estimated unrecorded part out of the
  others' loss, fit again) is what :func:`cleaned_loss` does for the day's selected
  customers; more of it: 3 passes 0.924 48 (0.929 54, blunt 180), a selected customer's
  part taken out from a robust t of 1 0.930 47 (0.931 51) or only from 3 0.929 47 (0.933
  52), all on seed 7: no gain. A customer can be peeled only where its cross products
  with the others were kept, the day's 4 whose curves stand out most: the partial thieves
  are seldom among them, and what stands in their way is less the thieves above them
  than honest customers' statistics as high as theirs;
- the steady t read against the customer's own scale, its standard error from its days'
  spread (the window coefficient's clustered-by-day error, Σ_d w_d² (ry_d − γ rr_d)² /
  (Σ_d w_d rr_d)², which a household whose noise runs over hours inflates): in place of
  the model's, 0.925 46 | 0.920 58; the larger of the two, 0.930 46 | 0.924 58 (summed
  0.934 51 | 0.930 59): the honest customers above the partial thieves are not mostly
  large or autocorrelated ones (median 11 kWh a day on seed 7);
- the estimated unrecorded share in the strength (z x share / 0.2 in 0.5-1.5, or / 0.3
  in 0.7-1.3): 0.927 47 | 0.921 51 and 0.930 49 | 0.923 57: an honest customer's
  misfit reads as large a share as a partial thief's (the honest customers ranked above
  a partial thief on seed 7: a median true-to-recorded ratio of 1.13).

On the features alone (every customer's best statistic over the windows, partial thieves
against the customers without injected theft), the largest t reads a ROC AUC of 0.926 |
0.939, the sum of the positive parts 0.940 | 0.950, and that sum combined over the
month's windows (Stouffer) 0.946 | 0.949; the ranking's AUC counts the other 293 injected
thieves among the negatives too (of 19,901), which can cost it up to 0.015 against the
features'. A ranking AUC of 0.95 needs the balance's features
near 0.965, and 80 % in the area's top 5 is above what a perfect ordering of honest
customers allows while blunt thieves rank first (about 83 | 90 of 99).

The step's night share on nights not collected
-----------------------------------------------
A customer-day without its curve (a concentrator offline, a meter not read) keeps its
register's kWh in the day state and no night kWh: its night share read 0, a step down
from the customer's other days. On the generated zone of seed 7 (20,000 meters x 30
days) 217 of the 4,274 customers with such a day and no injected theft reached a step t
of 3 in some window, against 14 of the 12,017 with no fault at all: the step statistic
listed a missing curve as a night bypass. The day state now counts the customer's night
slots collected (``night_slots``), and the night share reads only the nights with all
32 (:func:`share_steps`; the area share reads the register and keeps every day; states
kept before the column read as collected). 4 of the 4,274 reach 3 now. Through the
pipeline (loss and anomalies rerun on the validated lakes with the day states computed
again, ``meterlake evaluate``; partial thieves' ROC AUC, area top-5 hits and hits with
the other thieves set apart; blunt thieves' AUC and hits)::

    seed    partial before      partial after       blunt before    blunt after
    7       0.933  52  68       0.933  53  68       0.985  180      0.987  180
    11      0.930  59  78       0.931  61  78       0.984  175      0.986  175

The injectors, wrong multipliers and wrong areas keep their hits (h1 of seed 7 0.937 ->
0.938, h5 of seed 11 0.933 -> 0.934). The gain is small because the missed partial
thieves sit mostly behind honest customers with no fault at all (345 of the 555 honest
customers ranked above a missed partial thief on seed 7 carry no injected fault).

Measured at the same time and dropped (seed 7, through the pipeline):

- the selected customers' parts taken out of the others' loss at each day's own
  coefficient (the others' load eliminated that day) instead of the window's, for
  customers whose some-days statistic reaches ``clean_min_t`` or for every selected one:
  partial 0.921 50 69 and 0.922 52 70 against 0.933 52 68 (blunt 179 and 181, wrong
  multipliers 22 and 23, wrong areas 38 and 36): a day's coefficient of one customer is
  noisy, and taking it out adds that noise to every other customer's loss;
- the balance strength of a date combined with the earlier windows' (the mean of the
  last two, a blend with the month's mean, Stouffer over the month): 0.931-0.933, top 5
  52-54, blunt 178-179 against 180 (with the night share above).

The generator's interval rounding was the first finding: it put each meter's day of
rounding into its peak slot, a spike of up to 0.5 kWh in the master's curve, which is
the size of the signal sought. Meters count interval energy as differences of their
running count; the generator now does the same.

A day's statistics are computed for a range of areas at once (stacked QR, pseudo-inverses
per distinct slot mask, the shapes' subspace iteration); one loop over areas is left with
one matrix product per area for the shapes' Gram matrix and one for every customer's
projections and cross products. The mapping test loops over its few candidate-days.
Nothing loops over meters or rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field, model_validator
from threadpoolctl import ThreadpoolController

from meterlake.schemas.loss_diagnosis import BALANCE_RULES
from meterlake.transforms.loss import INPUT_COLUMNS as LOSS_INPUT_COLUMNS
from meterlake.transforms.metering import standard_multipliers

from .strict import StrictModel

SLOT_COLUMNS: tuple[str, ...] = tuple(f"p{i}" for i in range(1, 97))
SLOTS = 96

#: the meter_daily columns the balance reads: line loss's inputs, less the quality flag and PV rating
MEMBER_COLUMNS: dict[str, pl.DataType] = {
    k: v for k, v in LOSS_INPUT_COLUMNS.items() if k not in ("quality", "pv_capacity_kw")
}

#: rule names the balance's findings carry in loss_diagnosis
RULE_THEFT = BALANCE_RULES["theft_candidate"]
RULE_MULTIPLIER = BALANCE_RULES["multiplier_suspect"]
RULE_MAPPING = BALANCE_RULES["mapping_suspect"]


class BalanceRules(StrictModel):
    """Settings of the interval balance; config/loss.toml [diagnosis.balance] (the stage's
    settings add whether and how often it runs). The standard multipliers come from the
    rating table (:mod:`meterlake.transforms.metering`)."""

    window_days: int = Field(14, ge=1, le=92, description="days of curves in a balance window")
    min_days: int = Field(7, ge=1, description="fewest days with a balance row an area's fit may rest on")
    day_bases: int = Field(12, ge=1, le=48, description="smooth time-of-day terms absorbed from each area-day's loss")
    load_power: float = Field(1.0, ge=0.0, le=4.0, description="a slot weighs 1 / (smoothed area load)^load_power")
    day_shapes: int = Field(
        3,
        ge=0,
        le=12,
        description="common shapes of the day's curves absorbed beside the bumps (areas of 30 customers up)",
    )
    shapes_min_customers: int = Field(
        30, ge=1, description="fewest customers of an area whose days absorb the shapes and the copper term"
    )
    copper_term: bool = Field(
        True,
        description="absorb the load loss (the square of the area's load) beside the bumps, free per day (areas of 30 customers up)",
    )
    min_slots: int = Field(
        48, ge=1, le=96, description="fewest fitted slots (master and every customer present) an area-day needs"
    )
    fill_max_share: float = Field(
        0.05,
        ge=0.0,
        description="a customer-day below this share of the master's energy gets its uncollected slots filled "
        "from its daily register; larger ones leave those slots out of the day",
    )
    min_recorded_kwh: float = Field(
        1.0, ge=0.0, description="a customer recording less than this (kWh over the window) gets no coefficient"
    )
    clean_customers: int = Field(
        4,
        ge=0,
        le=32,
        description="customers per area-day whose cross products are kept, so the window takes their fitted part out of the others' loss (0: none)",
    )
    clean_passes: int = Field(2, ge=0, le=8, description="refits of the window on the loss so cleaned")
    clean_min_t: float = Field(
        2.0, ge=0, description="a selected customer's part is taken out from this robust t (either sign) up"
    )
    min_t: float = Field(4.0, gt=0, description="a coefficient must stand this many standard errors from the area's")
    report_t: float = Field(
        2.0, gt=0, description="theft evidence is listed from this robust t up (score = t / (3 x min_t))"
    )
    tau_min_customers: int = Field(
        8, ge=1, description="fewest customers near the median that make the area's τ (else τ = 0)"
    )
    theft_min_share: float = Field(0.1, gt=0, lt=1, description="least unrecorded share of a theft candidate")
    added_min_coefficient: float = Field(
        0.25,
        description="the night coefficient counts from this value up (a night bypass recording a share a: 1/a - 1)",
    )
    night_spread_floor: float = Field(
        0.5,
        gt=0,
        description="theft evidence reads the night statistic against its area's own spread, not below this "
        "(the multiplier and mapping readings keep 1)",
    )
    days_t_cap: float = Field(
        3.0,
        gt=0,
        description="the some-days statistic counts each day's t (against the customer's own coefficient) up to this",
    )
    step_min_days: int = Field(
        2, ge=1, description="the step statistic: fewest days either side of a split of the window"
    )
    step_days: int = Field(
        28,
        ge=1,
        le=92,
        description="the step statistic reads the customer's day states over this many days up to the window's end "
        "(the window's own days when it is longer; only the days meter_daily holds)",
    )
    weak_t: float = Field(
        1.5,
        gt=0,
        description="theft evidence the listing rules leave out is kept from this z up (the largest of the four "
        "statistics) as a weak finding, ranked after the area's others and not cut by its cap",
    )
    weak_weight: float = Field(
        0.25,
        ge=0,
        le=0.9,
        description="a weak finding scores this share of what its z would score listed (0: none kept); under 1/3, "
        "so never a theft case",
    )
    step_spread_floor: float = Field(
        0.02,
        gt=0,
        description="the step statistic: floor of the day-to-day spread (of the night share; of the area share, "
        "relative to its mean)",
    )
    multiplier_min_ratio: float = Field(
        1.25, gt=1, description="the true-to-recorded ratio (or its inverse) a multiplier suspect must reach"
    )
    multiplier_tolerance: float = Field(
        0.12, gt=0, description="log distance of the estimated multiplier from the nearest standard one"
    )
    mapping_tolerance: float = Field(
        0.25, gt=0, description="coefficient within this of -1 in the booked area and of +1 in the other"
    )

    @model_validator(mode="after")
    def _report_below_min_t(self) -> BalanceRules:
        if self.report_t > self.min_t:
            raise ValueError(f"balance: expected report_t <= min_t, found {self.report_t} and {self.min_t}")
        return self


class BalanceInputError(ValueError):
    """The curves or meter_daily rows handed to the balance lack a column or are mistyped."""


def _require(frame: pl.LazyFrame, columns: dict[str, pl.DataType], what: str) -> pl.LazyFrame:
    schema = frame.collect_schema()
    missing = [c for c in columns if c not in schema]
    if missing:
        raise BalanceInputError(f"{what}: expected columns {', '.join(missing)}; found {', '.join(schema.names())}")
    return frame.select(pl.col(c).cast(t) for c, t in columns.items())


# -- the window as arrays -----------------------------------------------------------------


def member_days(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    start: dt.date,
    end: dt.date,
) -> tuple[pl.DataFrame, np.ndarray]:
    """One row per area member and day of the window, and its primary-side curve.

    ``curves``: meter_id, data_date, p1..p96 (meter side; null = not collected).
    ``members``: meter_daily rows (:data:`MEMBER_COLUMNS`). The frame is sorted by
    area, role (master first), meter, date; ``_d`` is the day index in the window, ``_j``
    the customer's column in its area (-1 for a master). The array (rows x 96, NaN =
    not collected or no curve) is the curve times the multiplier, row for row.
    """
    frame, slots = _member_frame(curves, members, start, end)
    return frame, _member_curves(frame, slots, 0, frame.height)


def _within(column: str, start: dt.date, end: dt.date, days: Sequence[dt.date] | None) -> pl.Expr:
    """``column`` from ``start`` to ``end``, and one of ``days`` where given."""
    inside = pl.col(column).is_between(start, end)
    if days is None:
        return inside
    return inside & pl.col(column).is_in(pl.Series(list(days), dtype=pl.Date).implode())


def _member_frame(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    start: dt.date,
    end: dt.date,
    days: Sequence[dt.date] | None = None,
) -> tuple[pl.DataFrame, list[np.ndarray]]:
    """The members frame of :func:`member_days` (with ``_c``, the row of its curve in
    the slot columns, null for none) and the curves' 96 slot columns (NaN = null).

    Only the narrow frame is joined and sorted, before any slot is read; the wide curves
    are then read a group of slot columns at a time, each group let go once copied out,
    so the day's curves are held once (as numpy columns) beside one group;
    :func:`_member_curves` gathers the rows of a range of members from them. With
    ``days`` (the days of the range to read, for :func:`day_states`) the frame is sorted
    by date first: each day's rows are one block, in the order one day alone has.
    """
    scan = _require(
        curves.lazy(),
        {"meter_id": pl.String(), "data_date": pl.Date(), **dict.fromkeys(SLOT_COLUMNS, pl.Float64())},
        "curves",
    ).filter(_within("data_date", start, end, days))
    # a curve row per member-day (the first of duplicates): found on the narrow key columns
    # only, so the wide rows are read out once, in the frame's order
    found = scan.select("meter_id", pl.col("data_date").alias("date")).collect()
    rows = found.height
    keys = found.lazy().with_row_index("_c").unique(["meter_id", "date"], keep="first")
    master = pl.col("role") == "area_master"
    order = ["area_id", "_master", "meter_id", "date"] if days is None else ["date", "area_id", "_master", "meter_id"]
    frame = (
        _require(members.lazy(), MEMBER_COLUMNS, "meter_daily")
        .filter(
            _within("date", start, end, days)
            & pl.col("area_id").is_not_null()
            & pl.col("role").is_in(["area_master", "customer"])
        )
        .unique(["meter_id", "date"], keep="first", maintain_order=True)
        .join(keys, on=["meter_id", "date"], how="left")
        .with_columns(_d=(pl.col("date") - pl.lit(start)).dt.total_days().cast(pl.Int32), _master=master)
        .sort(order, descending=[k == "_master" for k in order])
        .with_columns(
            # a customer's column in its area's window (the day states read only _master)
            _j=(pl.when(~master).then(pl.col("meter_id")).rank("dense").over("area_id") - 1)
            .fill_null(-1)
            .cast(pl.Int32)
            if days is None
            else pl.lit(None, pl.Int32)
        )
        .collect()
    )
    slots: list[np.ndarray] = []
    step = -(-SLOTS // max(1, -(-rows * SLOTS * 8 // SLOT_GROUP_BYTES)))  # columns of a group
    for i in range(0, SLOTS, step):  # the same rows, in the same order, as the keys
        group = scan.select(SLOT_COLUMNS[i : i + step]).collect()
        slots += [group.drop_in_place(name).to_numpy() for name in SLOT_COLUMNS[i : i + step]]
        del group
    return frame, slots


#: bytes of curve values read at once (a county day's 0.38 GB in 6 groups of 16 slots; a
#: small day in one read)
SLOT_GROUP_BYTES = 64 << 20


def _member_curves(frame: pl.DataFrame, slots: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
    """(hi - lo, 96): the primary-side curves of the frame's rows ``lo`` to ``hi`` (NaN =
    not collected or no curve), gathered from the slot columns into one row-major array
    (the rows are what the fit slices)."""
    part = frame.slice(lo, hi - lo)
    missing = part["_c"].is_null().to_numpy()
    rows = part["_c"].fill_null(0).to_numpy()
    values = np.full((part.height, SLOTS), np.nan)
    if len(slots) and len(slots[0]):  # the day has curves
        for j, column in enumerate(slots):
            values[:, j] = column[rows]
        values[missing] = np.nan
    values *= part["multiplier"].fill_null(1.0).to_numpy()[:, None]
    return values


# -- one day: the sufficient statistics ----------------------------------------------------

#: slots of the night window (22:00-06:00) of the night-only coefficient
NIGHT_END, NIGHT_START = 24, 88
NIGHT_SLOTS = (np.arange(SLOTS) < NIGHT_END) | (np.arange(SLOTS) >= NIGHT_START)
NIGHT_COUNT = int(NIGHT_SLOTS.sum())
#: the same as factors (1.0 on the night slots, 0.0 elsewhere): a curve times them is its
#: night part, the values a product with the bool mask gives, without converting it per element
NIGHT_FACTORS = NIGHT_SLOTS.astype(np.float64)

#: per area and day (``LAKE/_state/balance/date=.../areas.parquet``)
AREA_STATE: dict[str, pl.DataType] = {
    "area_id": pl.String(),
    "feeder_id": pl.String(),
    "slots": pl.Int32(),  # slots fitted (master and every customer present)
    "bases": pl.Int32(),  # time-of-day terms absorbed that day
    "yy": pl.Float64(),  # weighted sum of squares of the loss after those terms
    "ll": pl.Float64(),  # the same of the area's recorded load
    "ly": pl.Float64(),  # their cross product
    # ll and ly without the load-loss term (null where the area-day has none): the
    # loss's slope on the load, the marginal technical loss of a kWh more
    "ll_linear": pl.Float64(),
    "ly_linear": pl.Float64(),
    "weight": pl.Array(pl.Float32(), SLOTS),  # slot weights (0 = slot not fitted)
    "resid": pl.Array(pl.Float32(), SLOTS),  # weighted loss values after the terms (0 where not fitted)
    "load": pl.Array(pl.Float32(), SLOTS),  # weighted recorded load values after the terms
    #: the day's common shapes and its load-loss curve absorbed (weighted), 96 values each (0 where not fitted)
    "shapes": pl.List(pl.Float32()),
}
#: per customer and day (``customers.parquet``): cross products of its weighted curve,
#: after the day's terms, with the loss (ry), itself (rr), the load (rl), and those of
#: its night slots (n*)
CUSTOMER_STATE: dict[str, pl.DataType] = {
    "area_id": pl.String(),
    "meter_id": pl.String(),
    "customer_id": pl.String(),
    "multiplier": pl.Float64(),
    "kwh": pl.Float64(),  # the day's recorded kWh (primary, register)
    "night_kwh": pl.Float64(),  # recorded in the night slots (curve)
    # night slots collected (of NIGHT_COUNT): a night with a gap has no night share to read
    "night_slots": pl.Int8(),
    **{k: pl.Float64() for k in ("rr", "ry", "rl", "nn", "nr", "ny", "nl")},
    # its place among the area-day's selected customers (``clean_customers`` whose
    # curves stand out most from the area's that day; null: not one of them), and the
    # cross products of its curve (cross) and of its night slots (night_cross) with
    # theirs, in that order (0 past the area's customers)
    "selected": pl.Int8(),
    "cross": pl.List(pl.Float32()),
    "night_cross": pl.List(pl.Float32()),
}
STAT_NAMES = ("rr", "ry", "rl", "nn", "nr", "ny", "nl")


#: member rows (whole areas) gathered and fitted at once: beyond the day's curves, a day's
#: statistics hold the arrays of this many rows, not of the whole day
CHUNK_ROWS = 8_192

#: how a day's ranges of areas are fitted: a ``map`` of a range's fit over the day's
#: ranges, the results in the ranges' order. The built-in ``map`` fits one after another;
#: the stage hands its thread pool's, which fits as many at once as it has threads (each
#: range's figures are a function of its own rows, whichever thread fits it)
RangeMap = Callable[[Callable[[tuple[int, int]], Any], Sequence[tuple[int, int]]], Iterable[Any]]


def _bases(count: int) -> np.ndarray:
    """(96, count) periodic bumps over the day: smooth time-of-day shapes a day's loss may take."""
    h = np.arange(SLOTS, dtype=np.float64)
    centres = np.linspace(0, SLOTS, count, endpoint=False)
    d = np.abs(h[:, None] - centres[None, :])
    d = np.minimum(d, SLOTS - d)
    return np.exp(-0.5 * (d / (SLOTS / count * 0.7)) ** 2)


def _clear(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rows of ``x`` less their projection on the columns of ``q`` (orthonormal)."""
    return x - (x @ q) @ q.T


def _leading(g: np.ndarray, k: int, iterations: int = 12) -> np.ndarray:
    """(areas, 96, k): the leading eigenvectors of each symmetric ``g`` (areas, 96, 96).

    Subspace iteration: a few products with each 96 x 96 matrix instead of its full
    eigendecomposition (a county day has thousands of areas), all areas at once; the
    common shapes stand far above the rest.
    """
    v = np.linalg.qr(g[:, :, :k] + np.eye(g.shape[1], k, dtype=g.dtype))[0]
    for _ in range(iterations):  # fixed small count
        v = np.linalg.qr(g @ v)[0]
    return v


def _fill(
    rec: np.ndarray, kwh: np.ndarray, master_kwh: np.ndarray, bounds: np.ndarray, area: np.ndarray, max_share: float
) -> None:
    """Fill small customers' uncollected slots from their daily registers, in place.

    ``rec`` (customers, 96), each area's rows from ``bounds[a]`` to ``bounds[a + 1]``;
    ``master_kwh`` per customer (its area's), ``area`` its area. With 150 customers an area rarely has a
    day on which every curve arrived. A customer-day holding less than ``max_share`` of
    the master's energy gets its uncollected slots from the energy its register
    measured beyond the collected slots, spread like the area's collected load in those
    slots: the guess carries no 15-minute variation of its own, so it adds only that
    customer's own variation to the loss. Larger customers' gaps stay gaps (their slots
    are left out that day).
    """
    small = (np.nan_to_num(kwh) < max_share * np.maximum(master_kwh, 0.0)) & ~np.isnan(kwh)
    rows = np.flatnonzero(small & np.isnan(rec).any(1))
    if not len(rows):
        return
    r = rec[rows]
    gap = np.isnan(r)
    need, which = np.unique(area[rows], return_inverse=True)
    shape = np.stack([np.nansum(rec[bounds[a] : bounds[a + 1]], 0) for a in need])  # areas that need it: few
    along = shape[which.ravel()]
    weight = np.where(gap, np.where(along > 0, along, 1e-9), 0.0)
    rest = np.maximum(kwh[rows] - np.where(gap, 0.0, r).sum(1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = weight / weight.sum(1, keepdims=True) * rest[:, None]
    r[gap] = fill[gap]
    rec[rows] = r


def day_state(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    day: dt.date,
    rules: BalanceRules = BalanceRules(),
    chunk_rows: int = CHUNK_ROWS,
    fit_ranges: RangeMap = map,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One day's sufficient statistics of every area: (areas, customers), see :data:`AREA_STATE`.

    Reads that day's curves and meter_daily rows only; the window fit sums the days.
    Per area: the loss curve (master - Σ recorded) and every customer's recorded curve,
    weighted and cleared of the day's smooth terms and common shapes; per customer the
    cross products with the loss (ry), itself (rr), the load (rl) and those of its night
    slots; per area the sums of squares and the cleared loss and load curves themselves
    (the mapping test reads them). The linear algebra is thousands of small matrices,
    stacked (one call for all areas) where numpy allows it, one BLAS thread (several
    threads only wait on one another at this size).
    """
    return day_states(curves, members, [day], rules, chunk_rows, fit_ranges)[0]


def day_states(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    days: Sequence[dt.date],
    rules: BalanceRules = BalanceRules(),
    chunk_rows: int = CHUNK_ROWS,
    fit_ranges: RangeMap = map,
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """:func:`day_state` of each of ``days``, in that order, from one read of their curves and rows.

    Each day's statistics are those :func:`day_state` gives for it alone (a day is fitted
    on its own rows only); the curves and meter_daily rows of all the days are read and
    joined at once, which is what a day of a few hundred meters costs most. The days'
    curves are held together: the caller bounds how many days it hands at once.
    ``fit_ranges`` (:data:`RangeMap`) fits each day's ranges of areas: one after another
    by default; the stage hands a map that fits two at once on its threads (the same
    figures, to the last bit: a range's are its own rows').
    """
    if not days:
        return []
    with _one_blas_thread():
        frame, slots = _member_frame(curves, members, min(days), max(days), days)
        areas, customers = _states(frame, slots, rules, chunk_rows, fit_ranges)
    if len(days) == 1:
        return [(areas, customers)]
    by_area, by_customer = (f.partition_by("date", as_dict=True, maintain_order=True) for f in (areas, customers))
    return [(by_area.get((d,), areas.clear()), by_customer.get((d,), customers.clear())) for d in days]


#: threadpoolctl's view of the loaded native libraries, taken once: each
#: ``threadpool_limits`` call otherwise lists them all again (a few ms, paid per day)
_THREADPOOLS: list[ThreadpoolController] = []


def _one_blas_thread() -> Any:
    """A context in which BLAS runs one thread (the linear algebra here is many small matrices)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def _lists(flat: np.ndarray, offsets: np.ndarray) -> pl.Series:
    """A List(Float32) series from its values and offsets (one list per pair of offsets).

    The arrow arrays are made from the numpy buffers themselves: ``pa.array`` of a numpy
    array imports pandas (0.3 s, a stage run alone pays it). A large list (64-bit offsets)
    is what polars holds, so the series is taken over as it is; a 32-bit list was cast,
    ~1 ms a call (about 60 calls a county day).
    """
    values, starts = np.ascontiguousarray(flat, np.float32), np.ascontiguousarray(offsets, np.int64)
    arr = pa.LargeListArray.from_arrays(
        pa.Array.from_buffers(pa.int64(), len(starts), [None, pa.py_buffer(starts)]),
        pa.Array.from_buffers(pa.float32(), len(values), [None, pa.py_buffer(values)]),
    )
    return pl.Series(arr)


def _rows(values: np.ndarray) -> pl.Series:
    """A List(Float32) series with one list per row of ``values`` (rows, k)."""
    rows, k = values.shape
    return _lists(values.ravel(), np.arange(rows + 1, dtype=np.int64) * k)


def _segments(keys: np.ndarray) -> np.ndarray:
    """Start of each run of equal values in ``keys`` (sorted), and its end as the last entry."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True]) if len(keys) else np.zeros(1, dtype=np.int64)


def range_firsts(starts: np.ndarray, rows: int) -> np.ndarray:
    """Of the areas beginning at row offsets ``starts`` (increasing, the first 0), the
    indices of those that begin a range of whole areas: a range ends at the first area
    boundary after every ``rows`` rows (an area holding more is a range of its own)."""
    return np.flatnonzero(np.r_[True, np.diff(starts // max(rows, 1)) > 0])


def _area_chunks(frame: pl.DataFrame, rows: int) -> list[tuple[int, int]]:
    """(first, end) row ranges of ``frame`` (sorted by area) holding whole areas, a range
    ending at the first area boundary after every ``rows`` rows (an area larger than that
    is a range of its own)."""
    if frame.height == 0:
        return []
    ids = frame["area_id"].rle_id().to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    cuts = starts[range_firsts(starts, rows)]
    return list(zip(cuts.tolist(), [*cuts[1:].tolist(), frame.height], strict=True))


def _states(
    frame: pl.DataFrame,
    slots: list[np.ndarray],
    rules: BalanceRules,
    chunk_rows: int = CHUNK_ROWS,
    fit_ranges: RangeMap = map,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The statistics of every area-day of the members frame (:func:`_member_frame`, sorted
    by date first), each day fitted on its own rows as :func:`day_state` fits it; the slot
    columns are let go once fitted, and the frames of all the days built at once. Every
    range is handed to ``fit_ranges`` as it stands, whatever the ranges beside it give;
    the rare range fitted again with its neighbour is fitted here, after them."""
    n = frame.height
    stats = np.full((n, len(STAT_NAMES)), np.nan)  # per member row; masters and unfitted areas stay NaN
    n_sel = rules.clean_customers
    place, cross = np.full(n, -1, dtype=np.int8), np.zeros((n, 2, n_sel), dtype=np.float32)
    night_kwh = np.zeros(n)
    night_slots = np.zeros(n, dtype=np.int8)

    def fit(lo: int, hi: int) -> _Fitted | None:
        values = _member_curves(frame, slots, lo, hi)
        night_kwh[lo:hi] = np.nansum(values[:, NIGHT_SLOTS], 1)
        night_slots[lo:hi] = (~np.isnan(values[:, NIGHT_SLOTS])).sum(1)
        return _fit_areas(frame.slice(lo, hi - lo), values, rules)

    # each day's whole areas, about chunk_rows rows at a time, never two days in one range:
    # a row's rounding in BLAS's products depends on the rows beside it (one fitted area
    # alone takes the matrix-vector product where several take the matrix product), so
    # ranges of several days' areas would not give each day's own figures. A range with
    # one fitted area is fitted again with its neighbour, so every figure is the one the
    # whole day fitted at once gives
    parts: list[tuple[int, _Fitted]] = []
    days = _segments(frame["_d"].to_numpy())
    for start, end in zip(days[:-1].tolist(), days[1:].tolist(), strict=True):
        first: int | None = None
        on_day = len(parts)
        chunks = [(lo + start, hi + start) for lo, hi in _area_chunks(frame.slice(start, end - start), chunk_rows)]
        # every range fitted as it stands (``fit_ranges`` may fit several at once), then
        # joined as one fit after another would: a range fitted again with its neighbour
        # is fitted here, on the rows it then spans
        alone = fit_ranges(lambda c: fit(*c), chunks)
        for (lo, hi), own in zip(chunks, alone, strict=True):
            first = lo if first is None else first
            fitted = own if first == lo else fit(first, hi)
            if fitted is not None and len(fitted[5]) == 1:
                if hi < end:
                    continue  # the next range is fitted with this one
                if len(parts) > on_day:
                    first = parts.pop()[0]
                    fitted = fit(first, hi)
            if fitted is not None:
                parts.append((first, fitted))
            first = None
    for lo, (rows, st, *_, (sel, cr, ncr)) in parts:
        stats[rows + lo] = st
        place[rows + lo], cross[rows + lo, 0], cross[rows + lo, 1] = sel, cr, ncr
    slots.clear()  # the days' curves, let go before the output frames are built
    if not parts:
        nums, arr, last = np.zeros((0, 7)), np.zeros((0, 3, SLOTS), np.float32), np.zeros(0, np.int64)
        shape_rows = _lists(np.zeros(0, np.float32), np.zeros(1, np.int64))
    else:
        nums = np.concatenate([f[2] for _, f in parts])
        arr = np.concatenate([f[3] for _, f in parts])
        shape_rows = pl.concat([f[4] for _, f in parts]).rechunk()
        last = np.concatenate([f[5] + lo for lo, f in parts])
    areas = (
        frame[last]
        .select("area_id", "feeder_id", "date")
        .with_columns(
            slots=pl.Series(nums[:, 0], dtype=pl.Int32),
            bases=pl.Series(nums[:, 1], dtype=pl.Int32),
            yy=pl.Series(nums[:, 2]),
            ll=pl.Series(nums[:, 3]),
            ly=pl.Series(nums[:, 4]),
            ll_linear=pl.Series(nums[:, 5], nan_to_null=True),
            ly_linear=pl.Series(nums[:, 6], nan_to_null=True),
            **{k: pl.Series(arr[:, i, :], dtype=AREA_STATE[k]) for i, k in enumerate(("weight", "resid", "load"))},
            shapes=shape_rows,
        )
        .select(*AREA_STATE, "date")
    )
    # the customers with statistics (rr not NaN: not masters, not in unfitted areas), taken
    # out of the arrays before the frame is built (its list columns are costly to filter)
    kept = ~np.isnan(stats[:, 0])
    customers = (
        frame.filter(pl.Series(kept))
        .select(
            "area_id",
            "meter_id",
            "customer_id",
            "date",
            pl.col("multiplier").fill_null(1.0),
            "kwh",
            night_kwh=pl.Series(night_kwh[kept]),
            night_slots=pl.Series(night_slots[kept]),
            **{k: pl.Series(stats[kept, i]) for i, k in enumerate(STAT_NAMES)},
            selected=pl.Series(place[kept]).replace(-1, None),
            cross=_rows(cross[kept, 0]),
            night_cross=_rows(cross[kept, 1]),
        )
        .cast(CUSTOMER_STATE)  # type: ignore[arg-type]
        .select(*CUSTOMER_STATE, "date")
    )
    return areas, customers


def _selected_cross(
    rec: np.ndarray, proj: np.ndarray, basis: np.ndarray, cb: np.ndarray, st: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each area's ``k`` customers whose curves stand out most that day, and every customer's cross products with them.

    ``rec``: the weighted curves (customers, 96), each area's rows from ``cb[a]`` to
    ``cb[a + 1]``; ``proj``: their projections on the area's terms ``basis[a]``; ``st``:
    their statistics (:data:`STAT_NAMES`). A customer stands out by its day's t against
    the area's median coefficient, up to the day's residual variance (the same for the
    whole area): ``|ry - median·rr| / sqrt(rr)``. Returns each customer's place among its
    area's selected (-1: not selected) and the cross products of its cleared curve (and
    of its night slots) with the selected cleared curves, (customers, k) each, 0 past an
    area's customers.
    """
    n = len(rec)
    place = np.full(n, -1, dtype=np.int8)
    cross, night_cross = np.zeros((n, k)), np.zeros((n, k))
    if k == 0 or n == 0:
        return place, cross, night_cross
    seg = np.repeat(np.arange(len(cb) - 1), np.diff(cb))
    rr, ry = st[:, 0], st[:, 1]
    fine = rr > 0
    g = np.where(fine, ry / np.where(fine, rr, 1.0), np.nan)
    # each area's median coefficient (NaN sorts last: the median of the finite ones)
    order = np.lexsort((g, seg))
    count = np.bincount(seg, weights=fine.astype(np.float64), minlength=len(cb) - 1).astype(np.int64)
    lo, hi = cb[:-1] + np.maximum(count - 1, 0) // 2, cb[:-1] + count // 2
    gs = g[order]
    med = np.where(count > 0, 0.5 * (gs[np.minimum(lo, n - 1)] + gs[np.minimum(hi, n - 1)]), 0.0)
    score = np.where(fine, np.abs(ry - med[seg] * rr) / np.sqrt(np.where(fine, rr, 1.0)), -1.0)
    rank = np.empty(n, dtype=np.int64)
    by_score = np.lexsort((-score, seg))
    rank[by_score] = np.arange(n) - cb[seg[by_score]]
    chosen = (rank < k) & fine
    place[chosen] = rank[chosen]
    at_night = rec * NIGHT_FACTORS  # every curve's night slots (0 elsewhere), once for all areas
    for a in np.unique(seg[chosen]):  # areas: one product each
        sel = cb[a] + np.flatnonzero(chosen[cb[a] : cb[a + 1]])
        sel = sel[np.argsort(place[sel])]
        cleared = rec[sel] - proj[sel] @ basis[a].T
        cross[cb[a] : cb[a + 1], : len(sel)] = rec[cb[a] : cb[a + 1]] @ cleared.T
        night_cross[cb[a] : cb[a + 1], : len(sel)] = at_night[cb[a] : cb[a + 1]] @ cleared.T
    return place, cross, night_cross


#: what :func:`_fit_areas` returns
_Fitted = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, pl.Series, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]
]


def _fit_areas(frame: pl.DataFrame, values: np.ndarray, rules: BalanceRules) -> _Fitted | None:
    """Every area-day's weights, time-of-day terms and cross products at once.

    Returns the customer rows fitted, their statistics (:data:`STAT_NAMES`), the areas'
    numbers (slots, bases, yy, ll, ly, ll_linear, ly_linear), their weight/resid/load curves, their shapes
    (96 values each, flattened), each area's last row in ``frame`` and the customers'
    cross products with the day's selected ones (:func:`_selected_cross`); None when no area
    has a master, a customer and ``min_slots`` fitted slots.
    """
    n = frame.height
    if n == 0:
        return None
    area = frame["area_id"].to_numpy()
    is_c = ~frame["_master"].to_numpy()
    kwh = frame["kwh"].to_numpy().astype(np.float64)
    bounds = _segments(area)
    n_area = len(bounds) - 1
    run = np.repeat(np.arange(n_area), np.diff(bounds))  # each row's area
    n_m = np.bincount(run[~is_c], minlength=n_area)
    # the master: its curve, or the sum of several (masters sort first in their area)
    mrows = np.flatnonzero(~is_c)
    msum = np.zeros((n_area, SLOTS))
    np.add.at(msum, run[mrows], np.nan_to_num(values[mrows]))
    master = np.where((n_m == 1)[:, None], values[bounds[:-1]], msum)
    master_kwh = np.bincount(run[mrows], weights=np.nan_to_num(kwh[mrows]), minlength=n_area)
    # customers of areas with a master, contiguous per area
    crow = np.flatnonzero(is_c & (n_m[run] > 0))
    if not len(crow):
        return None
    ca = run[crow]
    cb = _segments(ca)
    rec = values[crow]
    ua = ca[cb[:-1]]  # areas with customers, in order
    where = np.repeat(np.arange(len(ua)), np.diff(cb))  # each customer's area (index into ua)
    _fill(rec, kwh[crow], master_kwh[ca], cb, where, rules.fill_max_share)
    ok = ~np.isnan(master[ua]) & ~np.logical_or.reduceat(np.isnan(rec), cb[:-1], axis=0)
    good = ok.sum(1) >= rules.min_slots
    if not good.any():
        return None
    # keep the areas with enough slots (their customers stay contiguous)
    if not good.all():
        keep_c = good[where]
        crow, rec, where = crow[keep_c], rec[keep_c], where[keep_c]
    gi = np.flatnonzero(good)
    remap = np.full(len(ua), -1)
    remap[gi] = np.arange(len(gi))
    where = remap[where]
    ua, ok = ua[gi], ok[gi]
    cb = _segments(where)
    sizes = np.diff(cb)
    k_area = len(ua)
    rec[~ok[where]] = 0.0  # every uncollected slot is one not fitted
    load = np.add.reduceat(rec, cb[:-1], axis=0)
    y = np.where(ok, master[ua], 0.0) - load
    n_ok = ok.sum(1)

    # slot weights: the loss noise grows with the load (every customer's own variation
    # adds to it), so a slot counts with 1 / load^p, the load smoothed by the same terms
    z = _bases(rules.day_bases)
    patterns, inverse = np.unique(ok, axis=0, return_inverse=True)
    fit = np.zeros((len(patterns), z.shape[1], SLOTS))
    for p, pat in enumerate(patterns):  # the distinct sets of fitted slots: few
        fit[p][:, pat] = np.linalg.pinv(z[pat])
    smooth = np.einsum("aks,as->ak", fit[inverse.ravel()], load) @ z.T
    floor = np.maximum(0.2 * load.sum(1) / n_ok, 1e-9)
    w = np.where(ok, 1.0 / np.maximum(smooth, floor[:, None]) ** rules.load_power, 0.0)
    sw = np.sqrt(w / (w.sum(1) / n_ok)[:, None])
    q = np.linalg.qr(z[None, :, :] * sw[:, :, None])[0]  # (areas, 96, bases), 0 on slots not fitted
    rec *= sw[where]  # the weighted curves, in place (each row by its area's weights)

    # the day's common shapes: what most curves share beyond the bumps (a profile's
    # narrow evening peak), each curve scaled to unit length so that no one meter's
    # own variation makes a shape
    k = rules.day_shapes
    with_shapes = np.zeros(k_area, dtype=bool)
    shapes = np.zeros((k_area, SLOTS, k))
    if k > 0:
        cand = np.flatnonzero(sizes >= rules.shapes_min_customers)
        gram = np.zeros((len(cand), SLOTS, SLOTS), np.float32)
        for i, ai in enumerate(cand):  # areas: one cleared block and its Gram matrix each
            r = _clear(rec[cb[ai] : cb[ai + 1]], q[ai])
            norm = np.sqrt(np.einsum("ij,ij->i", r, r))
            r = (r[norm > 0] / norm[norm > 0, None]).astype(np.float32)
            if len(r) > k:
                gram[i] = r.T @ r
                with_shapes[ai] = True
        use = with_shapes[cand]
        if use.any():
            lead = _leading(gram[use], k).astype(np.float64)
            lead[~ok[cand[use]]] = 0.0
            shapes[cand[use]] = lead
    # the load loss: the square of the area's load (scaled by its mean), weighted like
    # the rest, its coefficient free on every day as the bumps' are (areas of
    # shapes_min_customers up: in a smaller one the square of the load is much of each
    # customer's own curve)
    with_copper = (sizes >= rules.shapes_min_customers) & rules.copper_term
    shapes = np.concatenate([shapes, (load * load / (load.sum(1) / n_ok)[:, None] * sw)[:, :, None]], axis=2)
    # every area's terms: the bumps, its shapes and its load loss where it has them
    used = np.column_stack([np.repeat(with_shapes[:, None], k, axis=1), with_copper])
    basis = np.zeros((k_area, SLOTS, z.shape[1] + k + 1))
    for combo in np.unique(used, axis=0):  # which terms: two or three kinds of area
        sel = (used == combo).all(1)
        cols = np.concatenate([q[sel], shapes[sel][:, :, combo]], axis=2)
        basis[sel, :, : cols.shape[2]] = np.linalg.qr(cols)[0]
    n_terms = z.shape[1] + used.sum(1)

    def clear(x: np.ndarray) -> np.ndarray:  # (areas, 96) less their projection on the terms
        return x - np.einsum("ask,ak->as", basis, np.einsum("ask,as->ak", basis, x))

    resid, lt = clear(y * sw), clear(load * sw)
    # the loss's slope on the load without the load-loss term: the marginal technical
    # loss of a kWh more (the load-loss term is the last of the terms; the others span
    # the same space with or without it)
    cu_dir = basis[np.arange(k_area), :, n_terms - 1]
    on_y, on_l = np.einsum("as,as->a", cu_dir, y * sw), np.einsum("as,as->a", cu_dir, load * sw)
    # per customer: its weighted curve's projection on the terms and its cross products
    # with the cleared loss and load, its night slots likewise, in one product per area
    night = NIGHT_FACTORS[None, :, None]
    m = np.concatenate([basis, resid[:, :, None], lt[:, :, None]], axis=2)
    m = np.concatenate([m, m * night], axis=2)
    width = basis.shape[2]
    prod = np.empty((len(rec), m.shape[2]))
    for a in range(k_area):  # areas: one matrix product each
        np.matmul(rec[cb[a] : cb[a + 1]], m[a], out=prod[cb[a] : cb[a + 1]])
    c, cn = prod[:, :width], prod[:, width + 2 : 2 * width + 2]
    rr_raw = np.einsum("ij,ij->i", rec, rec)
    nn_raw = sum(np.einsum("ij,ij->i", part, part) for part in (rec[:, :NIGHT_END], rec[:, NIGHT_START:]))
    st = np.column_stack(
        [
            rr_raw - np.einsum("ij,ij->i", c, c),
            prod[:, width],
            prod[:, width + 1],
            nn_raw - np.einsum("ij,ij->i", cn, cn),
            nn_raw - np.einsum("ij,ij->i", cn, c),
            prod[:, 2 * width + 2],
            prod[:, 2 * width + 3],
        ]
    )
    nums = np.column_stack(
        [
            n_ok,
            n_terms,
            np.einsum("as,as->a", resid, resid),
            np.einsum("as,as->a", lt, lt),
            np.einsum("as,as->a", lt, resid),
            np.where(with_copper, np.einsum("as,as->a", lt, lt) + on_l * on_l, np.nan),
            np.where(with_copper, np.einsum("as,as->a", lt, resid) + on_l * on_y, np.nan),
        ]
    )
    pairs = _selected_cross(rec, c, basis, cb, st, rules.clean_customers)
    arr = np.stack([sw * sw, resid, lt], axis=1).astype(np.float32)
    # the shapes each area used, 96 values each, as one list per area
    flat = shapes.transpose(0, 2, 1)[used].astype(np.float32).ravel()
    shape_rows = _lists(flat, np.r_[0, np.cumsum(used.sum(1) * SLOTS)])
    return crow, st, nums.astype(np.float64), arr, shape_rows, bounds[1:][ua] - 1, pairs


# -- the window: sums of the days --------------------------------------------------------------


def _with_day_weight(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Area-day rows (yy, ll, ly, slots, bases) with ``_w``, each area-day's weight: 1 /
    the loss's variance left after the day's terms and the load.

    Floored at the area's median day: a noisy day (an outage, a tampered neighbour)
    counts less, a quiet one no more than a usual one (a thief on some days makes
    exactly those days noisier). The arithmetic is numpy's, row by row: polars divides
    by a column it holds as one repeated value (an area's slots, the same every day) as a
    multiplication by its reciprocal, which differs in the last bit, so a weight would
    depend on which other rows share the frame.
    """
    rows = frame.lazy().collect()
    yy, ll, ly = (rows[k].cast(pl.Float64).to_numpy() for k in ("yy", "ll", "ly"))
    dof = np.maximum(rows["slots"].cast(pl.Int64).to_numpy() - rows["bases"].cast(pl.Int64).to_numpy() - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.fmax(np.fmax(yy - ly**2 / ll, 1e-9 * yy), 1e-30)
        var = rest / dof
    median = (
        rows.select(pl.Series(var).alias("_v"), "area_id")
        .select(pl.col("_v").median().over("area_id"))
        .to_series()
        .to_numpy()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ll > 0, 1 / np.fmax(var, median), 0.0)
    return rows.with_columns(_w=pl.Series(w))


def _groups(frame: pl.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group in ``frame`` sorted by ``keys`` (0, 1, ...; a new one where a key
    changes), and each group's first row with the frame's height as the last entry."""
    if frame.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    new = (
        frame.select(pl.any_horizontal(pl.col(k) != pl.col(k).shift() for k in keys).fill_null(True))
        .to_series()
        .to_numpy()
    )
    return np.cumsum(new) - 1, np.r_[np.flatnonzero(new), frame.height]


def _group_sums(gid: np.ndarray, groups: int, x: np.ndarray) -> np.ndarray:
    """Each group's sum of ``x``, its rows added one after the other in their order.

    A group's sum depends on its own rows and their order only, never on the rows of other
    groups beside them (``np.bincount`` adds row by row), so a range of areas fitted alone
    gives each area the figures the whole window fitted at once gives it, to the last bit.
    """
    return np.bincount(gid, weights=x, minlength=groups)


def _area_sums(a: pl.DataFrame) -> pl.DataFrame:
    """Per area of the window's area-days (sorted by area and day, with ``_w``): its feeder
    (the last day's), fitted slots N and absorbed terms K, and the marginal technical loss
    where every day carries a load-loss term (null elsewhere)."""
    gid, bounds = _groups(a, ["area_id"])
    n = len(bounds) - 1
    w = a["_w"].to_numpy()
    ll_lin, ly_lin = (a[k].cast(pl.Float64).to_numpy() for k in ("ll_linear", "ly_linear"))
    carried = _group_sums(gid, n, np.isnan(ll_lin).astype(np.float64)) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        marginal = _group_sums(gid, n, w * ly_lin) / _group_sums(gid, n, w * ll_lin)
    first, last = bounds[:-1], bounds[1:] - 1
    return pl.DataFrame(
        {
            "area_id": a["area_id"].gather(first),
            "feeder_id": a["feeder_id"].gather(last),
            "N": np.add.reduceat(a["slots"].cast(pl.Int64).to_numpy(), first) if n else np.zeros(0, np.int64),
            "K": np.add.reduceat(a["bases"].cast(pl.Int64).to_numpy(), first) if n else np.zeros(0, np.int64),
            "marginal": pl.Series(np.where(carried, marginal, np.nan), nan_to_null=True),
        },
        schema={"area_id": pl.String, "feeder_id": pl.String, "N": pl.Int64, "K": pl.Int64, "marginal": pl.Float64},
    )


def window_coefficients(
    areas: pl.DataFrame | pl.LazyFrame, customers: pl.DataFrame | pl.LazyFrame, rules: BalanceRules
) -> pl.DataFrame:
    """One row per customer of the window: coefficient, standard error, night coefficient, τ.

    ``areas`` and ``customers``: the window's :func:`day_state` rows (with ``date``).
    Each area-day is weighted by the inverse of its residual variance (a day with an
    outage, a tampered meter or a filled curve is noisier and counts less). Per
    customer, the loss (after the day's terms) is regressed on its own curve and the
    area's load: γ and τ; and once more with its night slots as a third variable.

    Every sum over days runs over the rows sorted by area, customer and day, each
    customer's days added in date order (:func:`_group_sums`): an area's figures are a
    function of its own rows only, whichever other areas are fitted beside it.
    """
    areas = areas.lazy()
    held = areas.collect_schema()
    a = _with_day_weight(
        areas.with_columns(  # states kept before the load-loss term have no linear sums
            pl.lit(None, pl.Float64).alias(k) for k in ("ll_linear", "ly_linear") if k not in held
        )
        .select("area_id", "date", "feeder_id", "slots", "bases", "yy", "ll", "ly", "ll_linear", "ly_linear")
        .sort("area_id", "date")
    )
    area_sum = _area_sums(a)
    # the loss sums are the area's, or the customer's own where it carries them (the loss
    # cleared of the other customers' fitted parts, see :func:`cleaned_loss`)
    customers = customers.lazy()
    own = [k for k in ("yy", "ly") if k in customers.collect_schema()]
    day_cols = ["area_id", "date", "_w", *(k for k in ("yy", "ll", "ly") if k not in own)]
    j = (
        customers.select(
            "area_id",
            "meter_id",
            "customer_id",
            "multiplier",
            "date",
            "kwh",
            pl.col("night_kwh").fill_null(0.0),  # what a sum skips
            *STAT_NAMES,
            *own,
        )
        .join(a.lazy().select(day_cols), on=["area_id", "date"], how="inner")
        .sort("area_id", "meter_id", "date")
        .collect()
    )
    gid, bounds = _groups(j, ["area_id", "meter_id"])
    n = len(bounds) - 1
    v = {k: j[k].to_numpy().astype(np.float64) for k in ("_w", "night_kwh", "yy", "ll", "ly", *STAT_NAMES)}
    v["kwh"] = j["kwh"].fill_null(0.0).to_numpy().astype(np.float64)  # a day without its register adds nothing
    # per customer-day: the load of the others u = load - r has its own coefficient that
    # day (τ_d: the technical loss, and whatever misfit follows the load that day); it is
    # eliminated day by day (Schur complement), leaving sums over days for γ
    with np.errstate(divide="ignore", invalid="ignore"):
        uu = v["ll"] - 2 * v["rl"] + v["rr"]
        ok = uu > 1e-12 * v["ll"]
        ru, uy, nu = v["rl"] - v["rr"], v["ly"] - v["ry"], v["nl"] - v["nr"]

        def schur(x: np.ndarray, xu: np.ndarray, yu: np.ndarray) -> np.ndarray:
            return np.where(ok, x - xu * yu / uu, x)

        parts = {
            "rr": schur(v["rr"], ru, ru),
            "ry": schur(v["ry"], ru, uy),
            "yy": schur(v["yy"], uy, uy),
            "nn": schur(v["nn"], nu, nu),
            "nr": schur(v["nr"], nu, ru),
            "ny": schur(v["ny"], nu, uy),
            "uu": np.where(ok, uu, 0.0),
            "uy": np.where(ok, uy, 0.0),
            "ru": np.where(ok, ru, 0.0),
        }
    w = v["_w"]
    last = bounds[1:] - 1
    c = (
        j[last]
        .select("area_id", "meter_id", "customer_id", "multiplier")
        .with_columns(
            _g=pl.Series(np.arange(n, dtype=np.int64)),
            recorded_kwh=pl.Series(_group_sums(gid, n, v["kwh"])),
            night_kwh=pl.Series(_group_sums(gid, n, v["night_kwh"])),
            days=pl.Series(np.diff(bounds), dtype=pl.Int32),
            **{f"S{k}": pl.Series(_group_sums(gid, n, w * e)) for k, e in parts.items()},
        )
        .join(area_sum.select("area_id", "feeder_id", "N", "K", "marginal"), on="area_id", how="inner")
        .filter((pl.col("Srr") > 0) & (pl.col("recorded_kwh") >= rules.min_recorded_kwh))
        .sort("area_id", "meter_id")
    )
    S = {k: c[f"S{k}"].to_numpy() for k in parts}
    # the fitted slots less the day's terms and the day's load coefficient
    dof = np.maximum(c["N"].to_numpy() - c["K"].to_numpy() - c["days"].to_numpy() - 1, 1).astype(np.float64)
    gamma = S["ry"] / S["rr"]
    sigma2 = np.maximum(S["yy"] - gamma * S["ry"], 1e-30) / dof
    # a coefficient is a ratio of energies: no meter resolves it finer than 1e-6
    se = np.maximum(np.sqrt(sigma2 / S["rr"]), 1e-6)
    # τ of the customer: the days' load coefficients given γ, averaged; where the days
    # carry a load-loss term (which takes most of the load's own coefficient), the
    # area's marginal technical loss: an unrecorded kWh adds that much loss besides
    tau = (S["uy"] - gamma * S["ru"]) / np.where(S["uu"] > 0, S["uu"], np.nan)
    marginal = c["marginal"].to_numpy().astype(np.float64)
    tau = np.where(np.isnan(marginal), tau, marginal)
    # with its night slots: 2 x 2 on the same eliminated sums
    det = S["rr"] * S["nn"] - S["nr"] ** 2
    ok2 = (S["nn"] > 0) & (det > 1e-12 * S["rr"] * np.maximum(S["nn"], 1e-300))
    det = np.where(ok2, det, np.nan)
    gn = (S["rr"] * S["ny"] - S["nr"] * S["ry"]) / det
    g2 = (S["nn"] * S["ry"] - S["nr"] * S["ny"]) / det
    rss2 = np.maximum(S["yy"] - g2 * S["ry"] - gn * S["ny"], 1e-30)
    se_n = np.sqrt(rss2 / np.maximum(dof - 1, 1) * S["rr"] / det)
    out = (
        c.select("area_id", "feeder_id", "meter_id", "customer_id", "multiplier", "recorded_kwh", "days", "_g")
        .with_columns(
            coefficient=pl.Series(gamma),
            std_error=pl.Series(se),
            load_coefficient=pl.Series(tau),
            slot_rows=c["N"].cast(pl.Int32),
            night_coefficient=pl.Series(np.where(ok2, gn, np.nan)),
            night_t_stat=pl.Series(np.where(ok2, gn / se_n, np.nan)),
            night_kwh=c["night_kwh"],
        )
        .filter(pl.col("coefficient").is_not_nan())
    )
    out = materialized(out)
    # each coefficient is read against the area's median one, taken again over the
    # customers within min_t of the first median (a few thieves or wrong multipliers do
    # not move it): one customer at a time, each coefficient carries a little of the
    # others' misfit (two curves are never exactly uncorrelated), which the median of
    # many customers measures. An area of fewer than tau_min_customers calm customers
    # has no median worth the name and is read against 0.
    t0 = (pl.col("coefficient") - pl.col("coefficient").median().over("area_id")) / pl.col("std_error")
    calm = pl.col("_calm")
    out = out.with_columns(_calm=t0.abs().fill_nan(0.0).fill_null(0.0) < rules.min_t).with_columns(
        area_median=pl.when(calm.sum().over("area_id") >= rules.tau_min_customers)
        .then(pl.col("coefficient").filter(calm).median().over("area_id"))
        .otherwise(0.0),
        area_tau=pl.col("load_coefficient").filter(calm).median().over("area_id"),
    )
    days_t, days_kwh = _some_days(out, gid, n, v, parts, rules)
    return out.with_columns(days_t_stat=days_t, days_kwh=days_kwh).select(*COEF_SCHEMA).sort("area_id", "meter_id")


def _some_days(
    out: pl.DataFrame,
    gid: np.ndarray,
    groups: int,
    v: dict[str, np.ndarray],
    parts: dict[str, np.ndarray],
    rules: BalanceRules,
) -> tuple[pl.Series, pl.Series]:
    """The some-days statistic and its unrecorded kWh of each customer of ``out`` (null
    without a day of its own curve), from its days' rows (``gid``: each row's customer,
    ``out``'s ``_g``; ``v``, ``parts``: the rows' sums and their eliminated parts).

    Theft on some days only: each day's own t against the customer's own window
    coefficient (the day's variance is 1 / its weight), capped at days_t_cap; the
    positive parts squared, summed over the days and standardised by their mean and
    variance under no theft (1/2 and 5/4 uncapped). Against the area's median instead, a
    steady coefficient a little off the median (another customer's misfit) counted
    on every day and made the statistic heavy-tailed: the days statistic asks whether
    some days stand out from the customer's other days, the steady t whether all do.
    The unrecorded kWh of the days that stand out (t >= 2) are still read against the
    area's median.
    """
    g = out["_g"].to_numpy()

    def per_group(col: str) -> np.ndarray:
        x = np.full(groups, np.nan)
        x[g] = out[col].to_numpy()
        return x

    coef, median, tau = (per_group(k)[gid] for k in ("coefficient", "area_median", "load_coefficient"))
    kept = np.zeros(groups, dtype=bool)
    kept[g] = True
    rows = kept[gid] & (v["rr"] > 0)
    rr, ry = parts["rr"], parts["ry"]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(v["_w"] / rr)
        t_day = (ry - coef * rr) * scale
        t_median = (ry - median * rr) * scale
        pos = np.clip(t_day, 0.0, rules.days_t_cap) ** 2
        # the days that stand out on their own (t >= 2): their unrecorded kWh
        day_kwh = np.where((t_median >= 2.0) & (rr > 0), (ry / rr - median) / (1 + tau) * v["kwh"], 0.0)
    count = np.bincount(gid[rows], minlength=groups)[g]
    total = _group_sums(gid[rows], groups, pos[rows])[g]
    kwh = _group_sums(gid[rows], groups, day_kwh[rows])[g]
    mean, var = capped_square_moments(rules.days_t_cap)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (total - mean * count) / np.sqrt(var * count)
    some = pl.Series(count > 0)
    return (
        pl.select(pl.when(some).then(pl.Series(t))).to_series(),
        pl.select(pl.when(some).then(pl.Series(kwh))).to_series(),
    )


def capped_square_moments(cap: float) -> tuple[float, float]:
    """Mean and variance of min(max(Z, 0), cap)² for a standard normal Z.

    >>> capped_square_moments(math.inf)
    (0.5, 1.25)
    """
    if math.isinf(cap):
        return 0.5, 1.25
    c = float(cap)
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    tail = 0.5 * math.erfc(c / math.sqrt(2))  # P(Z > c)
    # ∫_0^c z² φ = 1/2 − (c φ(c) + tail); ∫_0^c z⁴ φ = 3/2 − ((c³ + 3c) φ(c) + 3 tail)
    m2 = 0.5 - (c * phi + tail) + c**2 * tail
    m4 = 1.5 - ((c**3 + 3 * c) * phi + 3 * tail) + c**4 * tail
    return m2, m4 - m2 * m2


def _first_largest(t: np.ndarray, gid: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each group's row of its largest ``t``, the first of equal ones, a NaN below every
    number (-inf too), a group of NaNs its first row: the first row of each group in
    (group, t descending) order, as a stable sort would give it, from two passes over the
    rows instead of a sort of them (rows of a group consecutive, ``starts`` the first rows)."""
    n = len(t)
    largest = np.maximum.reduceat(np.where(np.isnan(t), -np.inf, t), starts)
    first = np.minimum.reduceat(np.where(t == largest[gid], np.arange(n), n), starts)
    return np.where(first == n, starts, first)


def share_steps(
    customers: pl.DataFrame | pl.LazyFrame, rules: BalanceRules, since: dt.date | None = None
) -> pl.DataFrame:
    """Each customer's largest step down, within its days, in what it records against its own days.

    ``customers``: :func:`day_state` customer rows (the window's, or the ``step_days`` up to
    its end); ``since``: the step's unrecorded kWh count the days from this one on (the
    window's; all days without it). Two daily series, from the
    kept day statistics only: the share of its recorded energy in the night slots
    (``night_kwh / kwh``), and its share of its area's recorded load that day. For every
    split of the window's days (``step_min_days`` up either side), the t of mean(before)
    - mean(after) over their pooled day-to-day spread, the spread floored at
    ``step_spread_floor`` (the area share's relative to its mean); per series its best
    split, and there the drop (1 - after / before) and the kWh the customer recorded
    after it (in the night slots for the night share). Columns: area_id, meter_id,
    step_t_stat (the larger series' t; null without a split), step_drop, step_kwh (the
    kWh that drop leaves unrecorded after the split: recorded x drop / (1 - drop)),
    step_night (the night series gave it). Every split of every customer at once: prefix
    sums over the rows sorted by customer and date.

    The night share reads only the days whose night slots were all collected
    (``night_slots``; rows without the column count as collected): on a day without its
    curve the register still has the day's kWh and the night slots none, so the share
    would read 0 (a step down on an honest customer whose concentrator was offline).
    """
    cust = customers.lazy()
    has_slots = "night_slots" in cust.collect_schema()
    c = (
        cust.filter(pl.col("kwh") > 0)
        .select(
            "area_id",
            "meter_id",
            "date",
            "kwh",
            "night_kwh",
            _night_ok=(pl.col("night_slots").fill_null(NIGHT_COUNT) >= NIGHT_COUNT) if has_slots else pl.lit(True),
        )
        .sort("area_id", "meter_id", "date")
        .with_columns(
            _new=(pl.col("meter_id") != pl.col("meter_id").shift()).fill_null(True)
            | (pl.col("area_id") != pl.col("area_id").shift()).fill_null(True)
        )
        .collect()
    )
    out_schema = {
        "area_id": pl.String,
        "meter_id": pl.String,
        "step_t_stat": pl.Float64,
        "step_drop": pl.Float64,
        "step_kwh": pl.Float64,
        "step_night": pl.Boolean,
    }
    if c.height == 0:
        return pl.DataFrame(schema=out_schema)
    kwh = c["kwh"].to_numpy().astype(np.float64)
    night_kwh = np.nan_to_num(c["night_kwh"].to_numpy().astype(np.float64))
    # the days whose unrecorded kWh count (the window's): a split before it takes those after it
    counted = np.ones(c.height) if since is None else (c["date"] >= since).to_numpy().astype(np.float64)
    starts = np.flatnonzero(c["_new"].to_numpy())
    bounds = np.r_[starts, c.height]
    gid = np.repeat(np.arange(len(starts)), np.diff(bounds))
    size = np.diff(bounds)[gid].astype(np.float64)
    nb = (np.arange(c.height) - bounds[:-1][gid] + 1).astype(np.float64)  # days up to and with this row
    na = size - nb
    valid = (nb >= rules.step_min_days) & (na >= rules.step_min_days)

    def prefix(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's sum over its customer's rows up to it, and its customer's total: each
        customer's days added in date order, whatever rows lie beside them."""
        cs = x.copy()
        for k in range(1, int(np.diff(bounds).max())):  # the k-th day of every customer with one
            at = starts[np.diff(bounds) > k] + k
            cs[at] += cs[at - 1]
        return cs, cs[bounds[1:] - 1][gid]

    def best(
        x: np.ndarray, floor: np.ndarray, kwh_of: np.ndarray, use: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        # ``use``: the rows the series reads (1) and skips (0); all of them without it
        if use is None:
            n_b, n_a, n, ok = nb, na, size, valid
        else:
            n_b, n_t = prefix(use)
            n, n_a = n_t, n_t - n_b
            ok = (use > 0) & (n_b >= rules.step_min_days) & (n_a >= rules.step_min_days)
            x, kwh_of = x * use, kwh_of * use
        # centred on the customer's mean first: the sums of squares are differences of
        # small numbers
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.add.reduceat(x, bounds[:-1])[gid] / n
        x = x - level if use is None else (x - level) * use
        s1, t1 = prefix(x)
        s2, t2 = prefix(x * x)
        k1, kt = prefix(kwh_of)
        with np.errstate(divide="ignore", invalid="ignore"):
            mb, ma = s1 / n_b, (t1 - s1) / n_a
            ss = (s2 - n_b * mb * mb) + (t2 - s2 - n_a * ma * ma)
            sp = np.maximum(np.sqrt(np.maximum(ss, 0.0) / np.maximum(n - 2, 1)), floor)
            t = np.where(ok, (mb - ma) / (sp * np.sqrt(1 / n_b + 1 / n_a)), -np.inf)
            drop = np.where(mb + level > 0, (mb - ma) / (mb + level), np.nan)
        pick = _first_largest(t, gid, bounds[:-1])
        return t[pick], drop[pick], (kt - k1)[pick]

    share_night = np.clip(np.where(kwh > 0, night_kwh / kwh, 0.0), 0.0, 1.0)
    # the share of the area's recorded load that day: the area-day's customers added in
    # their order (by meter), whatever other areas lie beside them
    area = np.cumsum((c["area_id"] != c["area_id"].shift()).fill_null(True).to_numpy())
    day = c["date"].to_physical().to_numpy().astype(np.int64)
    area_day = np.unique(area * (day.max() - day.min() + 1) + day - day.min(), return_inverse=True)[1].ravel()
    share_area = kwh / _group_sums(area_day, int(area_day.max()) + 1, kwh)[area_day]
    mean_area = np.add.reduceat(share_area, bounds[:-1])[gid] / size
    night_ok = c["_night_ok"].to_numpy().astype(np.float64)
    tn, dn, an = best(share_night, np.full(c.height, rules.step_spread_floor), night_kwh * counted, night_ok)
    ta, da, aa = best(share_area, rules.step_spread_floor * mean_area, kwh * counted)
    night = tn >= ta
    t = np.where(night, tn, ta)
    drop = np.where(night, dn, da)
    after = np.where(night, an, aa)
    with np.errstate(divide="ignore", invalid="ignore"):
        kwh_left = np.where((drop > 0) & (drop < 1), after * drop / (1 - drop), 0.0)
    first = c[bounds[:-1]]
    return pl.DataFrame(
        {
            "area_id": first["area_id"],
            "meter_id": first["meter_id"],
            "step_t_stat": pl.Series(np.where(np.isfinite(t), t, np.nan), nan_to_null=True),
            "step_drop": pl.Series(np.where(np.isfinite(t), drop, np.nan), nan_to_null=True),
            "step_kwh": np.where(np.isfinite(t), kwh_left, 0.0),
            "step_night": night & np.isfinite(t),
        },
        schema=out_schema,
    )


def cleaned_loss(
    areas: pl.DataFrame | pl.LazyFrame, customers: pl.DataFrame | pl.LazyFrame, raw: pl.DataFrame, rules: BalanceRules
) -> pl.LazyFrame:
    """The window's customer-days with the loss cleared of the selected customers' fitted parts.

    ``raw``: a pass of :func:`window_coefficients` on the same days. Each area-day's
    selected customers (``selected``) stand out from the area; the loss less their
    coefficients' part beyond the area's median, ``Σ_s (γ_s − median) · r_s``, is what
    the other customers are fitted against, and a selected customer's own part stays in
    its loss. The rows come back with ry, ny replaced and their own yy and ly (which
    :func:`window_coefficients` reads in place of the area's), all from the kept cross
    products: with r_i its curve, y the loss and δ the selected customers' coefficients
    (δ_i its own, 0 if not selected)::

        ry' = ry − Σ_s δ_s (r_i·r_s) + δ_i rr        ly' = ly − Σ_s δ_s rl_s + δ_i rl
        yy' = ‖y − Σ_s δ_s r_s + δ_i r_i‖²            ny' likewise with its night slots

    States kept without the cross products, or ``clean_customers`` 0: the rows as they are.
    """
    cust = customers.lazy()
    k = rules.clean_customers
    if k == 0 or "selected" not in cust.collect_schema():
        return cust
    picked = pl.col("selected").is_not_null()
    own = pl.col("_own")
    # a customer's part counts where it stands out (robust t) in an area large enough to
    # have a median (in a small one each coefficient carries much of the others' misfit)
    size = pl.len().over("area_id") >= rules.tau_min_customers
    delta = (
        coefficients(raw)
        .lazy()
        .select(
            "area_id",
            "meter_id",
            _d=pl.when(size & (pl.col("t_stat").abs() >= rules.clean_min_t))
            .then(pl.col("coefficient") - pl.col("area_median"))
            .fill_nan(None),
        )
    )
    c = cust.join(delta, on=["area_id", "meter_id"], how="left").with_columns(
        _own=pl.when(picked).then(pl.col("_d").fill_null(0.0)).otherwise(0.0)
    )
    # each area-day's δ of its selected customers, in their order
    dvec = (
        c.filter(picked)
        .group_by("area_id", "date")
        .agg(*(own.filter(pl.col("selected") == i).first().alias(f"_d{i}") for i in range(k)))
    )
    # every sum runs over the selected customers in their order (not in the rows' order,
    # which depends on the rows beside them): an area-day's figures are its own
    c = c.join(dvec, on=["area_id", "date"], how="left").with_columns(
        _gd=_ordered_sum(pl.col("cross"), k),
        _nd=_ordered_sum(pl.col("night_cross"), k),
    )
    # per area-day: what the selected parts take from the loss's sums
    parts = {"_y1": own * (pl.col("_gd") - 2 * pl.col("ry")), "_l1": own * pl.col("rl")}
    day = (
        c.filter(picked)
        .group_by("area_id", "date")
        .agg(
            *(
                e.filter(pl.col("selected") == i).first().alias(f"{name}_{i}")
                for name, e in parts.items()
                for i in range(k)
            )
        )
        .select(
            "area_id",
            "date",
            *(_fold([pl.col(f"{name}_{i}").fill_null(0.0) for i in range(k)]).alias(name) for name in parts),
        )
    )
    return (
        c.join(day, on=["area_id", "date"], how="left")
        .join(areas.lazy().select("area_id", "date", "yy", "ly"), on=["area_id", "date"], how="inner")
        .with_columns(pl.col("_y1", "_l1").fill_null(0.0))
        .with_columns(
            ry=pl.col("ry") - pl.col("_gd") + own * pl.col("rr"),
            ny=pl.col("ny") - pl.col("_nd") + own * pl.col("nr"),
            yy=pl.col("yy") + pl.col("_y1") + 2 * own * (pl.col("ry") - pl.col("_gd")) + own * own * pl.col("rr"),
            ly=pl.col("ly") - pl.col("_l1") + own * pl.col("rl"),
        )
        .drop("_d", "_own", *(f"_d{i}" for i in range(k)), "_gd", "_nd", "_y1", "_l1")
    )


def _fold(terms: list[pl.Expr]) -> pl.Expr:
    """The terms added one after the other, in their order."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _ordered_sum(cross: pl.Expr, k: int) -> pl.Expr:
    """Σ_i cross[i] · δ_i over a row's ``k`` selected customers, in their order (0 where
    the row keeps no cross products: a state kept before them)."""
    return _fold([(cross.list.get(i, null_on_oob=True) * pl.col(f"_d{i}").fill_null(0.0)) for i in range(k)]).fill_null(
        0.0
    )


def materialized(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every column held as its values.

    polars may hold a column of one repeated value (an area's slots, a range of one
    area's technical loss) as that value alone, and divides by such a column as a
    multiplication by its reciprocal, which differs from the division in the last bit:
    the same rows would give other figures beside other rows. Divisions in the window's
    fit read frames made this way (or numpy's arrays).
    """
    return pl.DataFrame(pl.from_arrow(frame.to_arrow()))


def coefficients(raw: pl.DataFrame) -> pl.DataFrame:
    """The derived figures of :func:`window_coefficients`: true-use ratio, robust t, unrecorded kWh."""
    raw = materialized(raw)
    # loss = τ·(true load) + Σ unrecorded: with the recorded load beside its own curve,
    # a customer recording a share a of its use gets γ = (1 + τ)(1/a - 1)
    excess = pl.col("coefficient") - pl.col("area_median")
    ratio = 1 + excess / (1 + pl.col("load_coefficient"))

    def robust(t: pl.Expr) -> pl.Expr:
        # slot residuals are not independent (a household's noise runs over hours), so
        # the textbook t overstates: each t is read against the area's own customers,
        # most of them honest (median and scaled MAD, Hampel)
        med = t.median().over("area_id")
        mad = 1.4826 * (t - med).abs().median().over("area_id")
        return (t - med) / pl.max_horizontal(mad, pl.lit(1.0))

    return raw.with_columns(
        true_use_ratio=ratio,
        t_stat=robust(excess / pl.col("std_error")),
        steady_unrecorded_kwh=(ratio - 1) * pl.col("recorded_kwh"),
        night_t_stat=robust(pl.col("night_t_stat")),
        days_t_stat=robust(pl.col("days_t_stat")),
        **({"step_t_stat": robust(pl.col("step_t_stat"))} if "step_t_stat" in raw.columns else {}),
    )


MAPPING_SCHEMA = {"meter_id": pl.String, "other_area_id": pl.String, "gamma": pl.Float64, "gamma_t": pl.Float64}


def mapping_candidates(coef: pl.DataFrame, rules: BalanceRules) -> pl.DataFrame:
    """Customers whose coefficient is near −1 (meter_id, area_id, feeder_id): the mapping test reads their curves."""
    return coef.filter(_mapping_here(rules) & pl.col("feeder_id").is_not_null()).select(
        "meter_id", "area_id", "feeder_id", "multiplier"
    )


def _band(rules: BalanceRules, se: pl.Expr) -> pl.Expr:
    """How far from its target a mapping coefficient may be: the tolerance, or two standard errors."""
    return pl.max_horizontal(pl.lit(rules.mapping_tolerance), 2 * se)


def _mapping_here(rules: BalanceRules) -> pl.Expr:
    """A coefficient near −1 in the booked area (a small customer's within two standard errors), t at least report_t."""
    return ((pl.col("coefficient") + 1).abs() <= _band(rules, pl.col("std_error"))) & (
        pl.col("t_stat") <= -rules.report_t
    )


def mapping_tests(
    cands: pl.DataFrame, curves: pl.DataFrame | pl.LazyFrame, areas: pl.DataFrame, rules: BalanceRules
) -> pl.DataFrame:
    """How well each candidate's curve explains the loss of every other area of its feeder.

    ``cands``: :func:`mapping_candidates`; ``curves``: their curves over the window
    (meter_id, data_date, p1..p96, meter side); ``areas``: the window's area states. For
    each day and other area B, the candidate's curve is weighted and cleared of B's
    time-of-day terms exactly as B's own customers were, and regressed on B's residual:
    γ / (1 + τ) is the coefficient it would get there (a customer fed from B: 1).
    """
    if cands.height == 0:
        return pl.DataFrame(schema=MAPPING_SCHEMA)
    cv = (
        curves.lazy()
        .select("meter_id", pl.col("data_date").alias("date"), *SLOT_COLUMNS)
        .join(cands.lazy().select("meter_id", "feeder_id", "multiplier"), on="meter_id", how="inner")
        .collect()
    )
    st = _with_day_weight(areas.filter(pl.col("feeder_id").is_in(cands["feeder_id"].unique().implode())))
    with _one_blas_thread():
        return _mapping_sums(cands, cv, st, rules)


def _mapping_sums(cands: pl.DataFrame, cv: pl.DataFrame, st: pl.DataFrame, rules: BalanceRules) -> pl.DataFrame:
    """The mapping test's sums: each candidate's curve cleared of every other area-day's
    terms of its feeder (one QR a day of an area, its slots and shapes its own), and
    regressed there.

    The per-area-day algebra runs one area-day at a time, as small matrices must; what
    is summed over the area-days (each area's totals, each candidate and area's cross
    products) is gathered as arrays and added by ``np.add.at``, which adds in index order:
    the same terms in the same order as a running sum per key, so the same bits, without a
    Python step per candidate and day (a 30,000-meter zone's window: 2,899 area-days,
    107,562 candidate-area-days).
    """
    z = _bases(rules.day_bases)
    own = dict(zip(cands["meter_id"], cands["area_id"], strict=True))
    cv = cv.sort("feeder_id", "date", "meter_id")
    x_all = cv.select(SLOT_COLUMNS).to_numpy().astype(np.float64) * cv["multiplier"].to_numpy()[:, None]
    rows_of: dict[tuple[str, dt.date], list[int]] = {}
    for i, k in enumerate(zip(cv["feeder_id"], cv["date"], strict=True)):  # candidate-days: few
        rows_of.setdefault(k, []).append(i)
    owner = [own[m] for m in cv["meter_id"]]
    # meters and areas as integer codes (the pairs' keys); the output's order is the pairs'
    # order first met, whatever the codes
    meter_no = np.unique(cv["meter_id"].to_numpy(), return_inverse=True)[1]
    area_names, area_no = np.unique(st["area_id"].to_numpy(), return_inverse=True)
    # every area-day of the candidates' feeders adds to its area's totals
    terms = np.column_stack(
        [st[k].to_numpy() for k in ("yy", "ll", "ly")]
        + [(st["slots"].cast(pl.Int64) - st["bases"].cast(pl.Int64)).to_numpy().astype(np.float64)]
    )
    wds = st["_w"].to_numpy()
    totals = np.zeros((len(area_names), 4))
    np.add.at(totals, area_no, wds[:, None] * terms)
    weights, resids, loads = (st[k].to_numpy().astype(np.float64) for k in ("weight", "resid", "load"))
    shape_lengths = st["shapes"].list.len().to_numpy().astype(np.int64)
    shape_ends = np.cumsum(shape_lengths)
    shape_starts = shape_ends - shape_lengths
    shape_values = st["shapes"].explode(empty_as_null=False).to_numpy().astype(np.float64)
    which: list[np.ndarray] = []  # per area-day: its candidates' rows of cv
    where: list[int] = []  # ... and the area-day's area
    got: list[np.ndarray] = []
    for r, (fid, day, aid) in enumerate(st.select("feeder_id", "date", "area_id").iter_rows()):
        idx = [i for i in rows_of.get((fid, day), []) if owner[i] != aid]
        weight = weights[r]
        ok = weight > 0
        if not idx or not ok.any():
            continue
        x = x_all[idx][:, ok]
        good = ~np.isnan(x).any(1)
        if not good.any():
            continue
        sw = np.sqrt(weight[ok])
        extra = shape_values[shape_starts[r] : shape_ends[r]].reshape(-1, SLOTS)[:, ok]
        q, _ = np.linalg.qr(np.column_stack([z[ok] * sw[:, None], extra.T]))
        xt = _clear(x[good] * sw[None, :], q)
        rs, ls = resids[r][ok], loads[r][ok]
        got.append(np.column_stack([(xt * xt).sum(1), xt @ rs, xt @ ls]) * wds[r])
        which.append(np.asarray(idx)[good])
        where.append(int(area_no[r]))
    if not got:
        return pl.DataFrame(schema=MAPPING_SCHEMA)
    # (candidate, other area) pairs, numbered in the order first met
    rows = np.concatenate(which)
    pair_area = np.repeat(np.array(where, dtype=np.int64), [len(w) for w in which])
    key = pair_area * (int(meter_no.max()) + 1) + meter_no[rows]
    _, first, pair = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sums = np.zeros((len(order), 3))
    np.add.at(sums, rank[pair], np.concatenate(got))
    first_rows, first_areas = rows[first[order]], pair_area[first[order]]
    xx, xy, xl = sums.T
    yy, ll, ly, dof = totals[first_areas].T
    det = xx * ll - xl * xl
    keep = ~((xx <= 0) | (det <= 1e-12 * xx * ll))
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = (ll * xy - xl * ly) / det
        tau = (xx * ly - xl * xy) / det
        sigma2 = np.maximum(yy - gamma * xy - tau * ly, 1e-30) / np.maximum(dof - 2, 1.0)
        t = gamma / np.sqrt(sigma2 * ll / det)
    return pl.DataFrame(
        {
            "meter_id": cv["meter_id"].gather(first_rows[keep]),
            "other_area_id": pl.Series(area_names[first_areas[keep]], dtype=pl.String),
            "gamma": (gamma / (1 + tau))[keep],
            "gamma_t": t[keep],
        },
        schema=MAPPING_SCHEMA,
    )


def _nearest_standard(ratio: pl.Expr, ratings: Sequence[float]) -> tuple[pl.Expr, pl.Expr]:
    """The standard multiplier nearest (in log) to each estimate, and the log distance.

    The nearest is one of the two standard logs either side of the estimate's (found by
    a binary search of the sorted table); of two at the same distance, the smaller.
    """
    logs = [math.log(r) for r in sorted(set(ratings))]
    if not logs:
        return pl.lit(None, pl.Float64), pl.lit(None, pl.Float64)
    x = ratio.log()
    table = pl.lit(pl.Series(logs, dtype=pl.Float64))
    if len(logs) > 1:
        hi: pl.Expr = table.search_sorted(x, side="left").clip(1, len(logs) - 1)
        lo = hi - 1
    else:
        lo = hi = pl.lit(0)
    d_lo, d_hi = (x - table.gather(lo)).abs(), (x - table.gather(hi)).abs()
    best = pl.min_horizontal(d_lo, d_hi)
    pick = pl.when(d_lo == best).then(lo).when(d_hi == best).then(hi)
    snapped = pl.lit(pl.Series([math.exp(lg) for lg in logs], dtype=pl.Float64)).gather(pick)
    return snapped.round(6), best


def findings(
    coef: pl.DataFrame, maps: pl.DataFrame, window_start: dt.date, window_end: dt.date, rules: BalanceRules
) -> pl.DataFrame:
    """loss_diagnosis-shaped findings: theft candidates, multiplier and mapping suspects.

    Columns: area_id, kind, rule, meter_id, customer_id, role, other_area_id, score,
    days, evidence (JSON), and the figures theft_cases needs (unrecorded_kwh,
    recorded_kwh, days). Scores are in [0, 1].
    """
    days = (window_end - window_start).days + 1
    sig = pl.col("t_stat").abs() >= rules.min_t
    # theft evidence: each statistic counts from report_t up; the candidate's strength is
    # the largest (score = z / (3 x min_t), so min_t reads 1/3 and a theft case needs it)
    shown = pl.col("t_stat") >= rules.report_t
    # the night t's spread over an area's customers is narrower than 1 (median scaled MAD
    # 0.64 on the generated zones), so the floor of 1 in `coefficients` shrinks it against
    # the other two statistics: the theft evidence reads it against the area's own spread
    # (down to night_spread_floor); the multiplier and mapping readings keep the floored one
    night_t = pl.col("night_t_stat")
    spread = 1.4826 * (night_t - night_t.median()).abs().median()
    coef = coef.with_columns(
        _night_t=(night_t / pl.max_horizontal(spread, pl.lit(rules.night_spread_floor))).over("area_id")
    )
    if "step_t_stat" not in coef.columns:  # rows made without the step statistic
        coef = coef.with_columns(
            step_t_stat=pl.lit(None, pl.Float64), step_drop=pl.lit(None, pl.Float64), step_kwh=pl.lit(0.0)
        )
    coef = coef.with_columns(pl.col("step_t_stat").fill_nan(None))
    z = pl.max_horizontal(
        pl.col("t_stat"), pl.col("_night_t"), pl.col("days_t_stat"), pl.col("step_t_stat").fill_null(0.0)
    ).fill_nan(0.0)

    def part(name: str, t: str | None = None) -> pl.Expr:
        on = (pl.col(t or f"{name}_t_stat") >= rules.report_t) & (
            pl.col(f"{name}_coefficient") >= rules.added_min_coefficient
        )
        return (
            pl.when(on)
            .then(pl.col(f"{name}_coefficient") / (1 + pl.col("load_coefficient")) * pl.col(f"{name}_kwh"))
            .otherwise(0.0)
        )

    # a steady share: its coefficient stands out; or a share on some days only: its days
    # stand out (the window's coefficient is then the days' average, and so is its kWh)
    some_days = (pl.col("days_t_stat") >= rules.report_t) & (pl.col("days_kwh") > 0)
    steady = pl.max_horizontal(
        pl.when(shown & (pl.col("true_use_ratio") > 1)).then(pl.col("steady_unrecorded_kwh")).otherwise(0.0),
        pl.when(some_days).then(pl.col("days_kwh")).otherwise(0.0),
    )
    # a step down in what the customer records against its own days: its drop (of the
    # night share, or of its share of the area's load) is the share it stopped recording
    step = ((pl.col("step_t_stat") >= rules.report_t) & (pl.col("step_drop") >= rules.theft_min_share)).fill_null(False)
    coef = coef.with_columns(
        _steady=steady,
        _night=part("night", "_night_t"),
        _night_wide=part("night"),
        _step=pl.when(step).then(pl.col("step_kwh")).otherwise(0.0),
    ).with_columns(unrecorded_kwh=pl.max_horizontal(pl.col("_steady") + pl.col("_night"), pl.col("_step")))
    share = pl.col("unrecorded_kwh") / (pl.col("unrecorded_kwh") + pl.col("recorded_kwh"))
    # a direct-connected customer whose curve runs against the area's loss (a coefficient
    # well below the area's that is no wrong area): energy recorded out of step with the
    # energy used, e.g. a day recorded flat or reversed. Its strength is its robust t,
    # 0 at min_t, 1 at 2.5 x min_t. (A CT customer's negative coefficient is read as a
    # too-large multiplier first.)
    against = (
        (pl.col("multiplier") <= 1)
        & (pl.col("coefficient") - pl.col("area_median") <= -rules.added_min_coefficient)
        & (pl.col("t_stat") <= -rules.min_t)
        & ((pl.col("coefficient") + 1).abs() > rules.mapping_tolerance)
    )
    against_strength = (
        pl.when(against).then(((-pl.col("t_stat") - rules.min_t) / (1.5 * rules.min_t)).clip(0.0, 1.0)).otherwise(0.0)
    )
    #: explained as theft that is not a steady share: not read as a multiplier or mapping error
    unsteady = pl.col("_night_wide") > 0
    ev_common: dict[str, Any] = {
        "coefficient": pl.col("coefficient").round(6),
        "std_error": pl.col("std_error").round(6),
        "area_technical_coefficient": pl.col("area_tau").round(6),
        "t_stat": pl.col("t_stat").round(3),
        "recorded_kwh": pl.col("recorded_kwh").round(3),
        "slot_rows": pl.col("slot_rows"),
    }
    # a night bypass takes its share of the night's use only: its share is read there
    night_share = pl.col("_night") / (pl.col("_night") + pl.col("night_kwh"))
    listed = (pl.col("unrecorded_kwh") > 0) & (share >= rules.theft_min_share)
    night_listed = (pl.col("_night") > 0) & (night_share >= rules.theft_min_share)
    # weak evidence: a z of weak_t up that the rules above do not list (its unrecorded share
    # too small, its statistic under report_t): a small score, so that a customer with some
    # evidence ranks above the many with none, never above a listed one's evidence of the same z
    strong = listed | night_listed | step | against
    weak = ~strong & (z >= rules.weak_t) & pl.lit(rules.weak_weight > 0)
    theft = coef.filter(strong | weak).with_columns(
        kind=pl.lit("theft_candidate"),
        rule=pl.lit(RULE_THEFT),
        other_area_id=pl.lit(None, pl.String),
        score=pl.when(strong)
        .then(pl.max_horizontal((z / (3 * rules.min_t)).clip(0.0, 1.0), against_strength))
        .otherwise(rules.weak_weight * (z / (3 * rules.min_t)).clip(0.0, 1.0))
        .round(6),
        _weak=~strong,
        unrecorded_share=share,
        evidence=pl.struct(
            unrecorded_kwh_per_day=(pl.col("unrecorded_kwh") / days).round(3),
            unrecorded_share=share.round(6),
            unrecorded_kwh=pl.col("unrecorded_kwh").round(3),
            steady_share_kwh=pl.col("_steady").round(3),
            some_days_kwh=pl.col("days_kwh").round(3),
            night_only_kwh=pl.col("_night").round(3),
            night_coefficient=pl.col("night_coefficient").round(6),
            night_t_stat=pl.col("_night_t").round(3),
            days_t_stat=pl.col("days_t_stat").round(3),
            step_t_stat=pl.col("step_t_stat").round(3),
            step_drop=pl.col("step_drop").round(6),
            step_kwh=pl.col("_step").round(3),
            runs_against_the_loss=against,
            weak=~strong,
            **ev_common,
        ).struct.json_encode(),
    )
    snapped, dist = _nearest_standard(pl.col("multiplier") * pl.col("true_use_ratio"), standard_multipliers())
    ratio = pl.col("true_use_ratio")
    mult = (
        coef.filter(
            sig
            & ~unsteady
            & (pl.col("multiplier") > 1)
            & ((ratio >= rules.multiplier_min_ratio) | (ratio <= 1 / rules.multiplier_min_ratio))
        )
        .with_columns(_snap=snapped, _dist=dist)
        .filter((pl.col("_dist") <= rules.multiplier_tolerance) & (pl.col("_snap") != pl.col("multiplier")))
        .with_columns(
            kind=pl.lit("multiplier_suspect"),
            rule=pl.lit(RULE_MULTIPLIER),
            other_area_id=pl.lit(None, pl.String),
            score=(
                (1 - pl.col("_dist") / rules.multiplier_tolerance / 2)
                * (pl.col("t_stat").abs() / (3 * rules.min_t)).clip(0.0, 1.0)
            )
            .clip(0.0, 1.0)
            .round(6),
            evidence=pl.struct(
                archive_multiplier=pl.col("multiplier"),
                estimated_multiplier=(pl.col("multiplier") * ratio).round(3),
                candidate_multiplier=pl.col("_snap"),
                **ev_common,
            ).struct.json_encode(),
        )
    )
    gamma_se = (pl.col("gamma") / pl.col("gamma_t")).abs()
    best = (
        maps.filter(((pl.col("gamma") - 1).abs() <= _band(rules, gamma_se)) & (pl.col("gamma_t") >= rules.report_t))
        .with_columns(_other_band=_band(rules, gamma_se))
        .sort("meter_id", pl.col("gamma_t"), descending=[False, True])
        .group_by("meter_id", maintain_order=True)
        .first()
    )
    own_fit = (1 - (pl.col("coefficient") + 1).abs() / _band(rules, pl.col("std_error"))).clip(0.0, 1.0)
    other_fit = (1 - (pl.col("gamma") - 1).abs() / pl.col("_other_band")).clip(0.0, 1.0)
    # listed when the booked area's evidence is strong on its own, or another area of
    # the feeder takes the customer's curve with a coefficient near 1
    strong = sig & ((pl.col("coefficient") + 1).abs() <= rules.mapping_tolerance)
    mapping = (
        coef.filter(~unsteady & _mapping_here(rules))
        .join(best, on="meter_id", how="left")
        .filter(strong | pl.col("other_area_id").is_not_null())
        .with_columns(
            kind=pl.lit("mapping_suspect"),
            rule=pl.lit(RULE_MAPPING),
            score=pl.when(pl.col("other_area_id").is_not_null())
            .then(0.5 + 0.25 * own_fit + 0.25 * other_fit)
            .otherwise(0.5 * own_fit)
            .round(6),
            evidence=pl.struct(
                coefficient_in_other_area=pl.col("gamma").round(6),
                t_stat_in_other_area=pl.col("gamma_t").round(3),
                **ev_common,
            ).struct.json_encode(),
        )
    )
    cols = [
        "area_id",
        "kind",
        "rule",
        "meter_id",
        "customer_id",
        "other_area_id",
        "score",
        "days",
        "evidence",
        "unrecorded_kwh",
        "recorded_kwh",
    ]
    return pl.concat(
        [theft.select(*cols, "_weak"), *(f.select(*cols, _weak=pl.lit(False)) for f in (mult, mapping))]
    ).with_columns(role=pl.lit("customer"), days=pl.col("days").cast(pl.Int32))


COEF_SCHEMA: dict[str, pl.DataType] = {
    "area_id": pl.String(),
    "feeder_id": pl.String(),
    "meter_id": pl.String(),
    "customer_id": pl.String(),
    "multiplier": pl.Float64(),
    "coefficient": pl.Float64(),
    "std_error": pl.Float64(),
    "load_coefficient": pl.Float64(),
    "area_tau": pl.Float64(),
    "area_median": pl.Float64(),
    "recorded_kwh": pl.Float64(),
    "days": pl.Int32(),
    "slot_rows": pl.Int32(),
    "night_coefficient": pl.Float64(),
    "night_t_stat": pl.Float64(),
    "night_kwh": pl.Float64(),
    "days_t_stat": pl.Float64(),
    "days_kwh": pl.Float64(),
}


def balance_window(
    areas: pl.DataFrame,
    customers: pl.DataFrame | pl.LazyFrame,
    window_end: dt.date,
    rules: BalanceRules = BalanceRules(),
) -> pl.DataFrame:
    """The window's coefficients (one row per customer) from its days' states.

    ``areas``, ``customers``: :func:`day_state` rows of the days of the window ending
    at ``window_end``; an area with fewer than ``min_days`` days is left out. The
    customers' rows may reach back ``step_days`` before the window's end: the step
    statistic reads them (what the customer recorded), the fit the window's only.
    """
    start = window_end - dt.timedelta(days=rules.window_days - 1)
    inside = pl.col("date").is_between(start, window_end)
    step_start = window_end - dt.timedelta(days=max(rules.step_days, rules.window_days) - 1)
    history = customers.lazy().filter(pl.col("date").is_between(step_start, window_end))
    a = areas.filter(inside)
    enough = a.group_by("area_id").len().filter(pl.col("len") >= rules.min_days)["area_id"]
    a = a.filter(pl.col("area_id").is_in(enough.implode()))
    if a.height == 0:
        return coefficients(pl.DataFrame(schema=COEF_SCHEMA))
    # rows handed in memory are filtered once (and each pass's cleaned loss computed once, not
    # once per query of the pass); a scan stays a scan, read by each query
    held = isinstance(customers, pl.DataFrame)
    days = customers.filter(inside).lazy() if held else customers.lazy().filter(inside)
    raw = window_coefficients(a, days, rules)
    # the loss cleared of the customers that stand out, and fitted again
    for _ in range(rules.clean_passes if rules.clean_customers and "selected" in days.collect_schema() else 0):
        cleaned = cleaned_loss(a, days, raw, rules)
        raw = window_coefficients(a, cleaned.collect().lazy() if held else cleaned, rules)
    # the step statistic reads the customers' own recorded days, not the loss: once a
    # window, over its step_days (a step before the window shows against the days after it)
    step_cols = ["area_id", "meter_id", "date", "kwh", "night_kwh"]
    step_cols += ["night_slots"] if "night_slots" in history.collect_schema() else []  # not in states kept before it
    steps = share_steps(history.select(step_cols), rules, since=start)
    raw = raw.join(steps, on=["area_id", "meter_id"], how="left")
    return coefficients(raw)


def balance(
    curves: pl.DataFrame | pl.LazyFrame,
    members: pl.DataFrame | pl.LazyFrame,
    window_end: dt.date,
    rules: BalanceRules = BalanceRules(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The window's coefficients and findings from its curves and meter_daily rows at once.

    The stage keeps each day's :func:`day_state` in the lake and sums them
    (:func:`balance_window`); this does the same in memory (tests, small zones).
    """
    start = window_end - dt.timedelta(days=rules.window_days - 1)
    step_start = window_end - dt.timedelta(days=max(rules.step_days, rules.window_days) - 1)
    held = (
        members.lazy()
        .select(pl.col("date").filter(pl.col("date").is_between(step_start, window_end)).unique().sort())
        .collect()["date"]
        .to_list()
    )
    days = [d for d in held if d >= start]
    empty = coefficients(pl.DataFrame(schema=COEF_SCHEMA))
    if len(days) < rules.min_days:
        # fewer days of history than any fit may rest on: nothing to read
        return empty, findings(empty, pl.DataFrame(schema=MAPPING_SCHEMA), start, window_end, rules)
    # the window's days, and the step statistic's days before it
    states = dict(zip(held, day_states(curves, members, held, rules), strict=True))
    areas = pl.concat([states[d][0] for d in days])
    customers = pl.concat([s[1] for s in states.values()])
    coef = balance_window(areas, customers, window_end, rules)
    cands = mapping_candidates(coef, rules)
    maps = mapping_tests(
        cands,
        curves.lazy().filter(
            pl.col("data_date").is_between(start, window_end) & pl.col("meter_id").is_in(cands["meter_id"].implode())
        ),
        areas,
        rules,
    )
    return coef, findings(coef, maps, start, window_end, rules)


def evidence_text(evidence: str) -> str:
    """The balance evidence of a finding in words (for reports and theft cases)."""
    e = json.loads(evidence)
    if "unrecorded_share" in e:
        return (
            f"the area balance leaves {e['unrecorded_kwh_per_day']} kWh/day unrecorded "
            f"({100 * e['unrecorded_share']:.0f}% of its use; coefficient {e['coefficient']}, t {e['t_stat']})"
        )
    if "candidate_multiplier" in e:
        return f"the area balance puts its multiplier near {e['estimated_multiplier']} (standard {e['candidate_multiplier']}), archive {e['archive_multiplier']}"
    return f"coefficient {e['coefficient']} in its booked area; {e.get('coefficient_in_other_area')} in the other"


def merge_diagnosis(
    diagnosis: pl.DataFrame,
    found: pl.DataFrame,
    window_start: dt.date,
    window_end: dt.date,
    theft_max_per_area: int,
    weak_weight: float = 0.0,
) -> pl.DataFrame:
    """The window's ``loss_diagnosis`` rows with the balance's findings merged in, re-ranked.

    ``diagnosis``: the daily-kWh diagnosis of the window (``loss_diagnosis`` columns);
    ``found``: :func:`findings`. A meter found by both for the same kind keeps the
    balance's row (the curves carry 96 times the evidence of the daily series). Within
    an area and kind, the balance's findings rank first (by score), then the daily
    diagnosis's, then the balance's weak findings (``_weak``, where ``found`` has it; one
    gives way to the daily diagnosis's finding of the same meter and kind); theft
    candidates are cut at ``theft_max_per_area``, weak findings are not, and with a
    ``weak_weight`` (:class:`BalanceRules`) the balance's candidates past the cut are kept
    as weak findings at that share of their score.
    """
    cols = diagnosis.columns
    if "_weak" not in found.columns:
        found = found.with_columns(_weak=pl.lit(False))
    status = diagnosis.select("area_id", "area_status", "area_loss_rate").unique("area_id", keep="first")
    new = (
        found.join(status, on="area_id", how="left")
        .with_columns(
            date=pl.lit(window_end),
            window_start=pl.lit(window_start),
            severity=pl.lit("warning"),
            rank=pl.lit(0, pl.Int32),
            _prio=pl.when(pl.col("_weak")).then(2).otherwise(0),
        )
        .select(*cols, "_prio")
    )
    keys = ["area_id", "kind", "meter_id"]
    # a weak finding gives way to the daily diagnosis's finding of the same meter and kind
    weak = pl.col("_prio") == 2
    new = pl.concat([new.filter(~weak), new.filter(weak).join(diagnosis.select(keys), on=keys, how="anti")])
    old = diagnosis.join(found.filter(~pl.col("_weak")).select(keys), on=keys, how="anti")
    merged = pl.concat([new, old.with_columns(_prio=pl.lit(1)).select(*cols, "_prio")], how="vertical_relaxed")
    by, desc = ["area_id", "kind", "_prio", "score", "meter_id"], [False, False, False, True, False]
    ranked = merged.sort(by, descending=desc).with_columns(
        rank=(pl.int_range(pl.len()).over("area_id", "kind") + 1).cast(pl.Int32)
    )
    # the balance's candidates the cut would drop are kept as weak findings (a listed one
    # never scores less than a weak one would); the weak findings follow the cut on,
    # numbered after the rows it keeps
    theft = pl.col("kind") == "theft_candidate"
    over = theft & (pl.col("rank") > theft_max_per_area) & (pl.col("_prio") == 0) & pl.lit(weak_weight > 0)
    ranked = ranked.with_columns(
        score=pl.when(over).then((pl.col("score") * weak_weight).round(6)).otherwise(pl.col("score")),
        evidence=pl.when(over)
        .then(pl.col("evidence").str.replace('"weak":false', '"weak":true', literal=True))
        .otherwise(pl.col("evidence")),
        _prio=pl.when(over).then(2).otherwise(pl.col("_prio")),
    )
    return (
        ranked.filter(~theft | (pl.col("rank") <= theft_max_per_area) | (pl.col("_prio") == 2))
        .sort(by, descending=desc)
        .with_columns(rank=(pl.int_range(pl.len()).over("area_id", "kind") + 1).cast(pl.Int32))
        .select(cols)
        .sort("area_id", "kind", "rank")
    )
