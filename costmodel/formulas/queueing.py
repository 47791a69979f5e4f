"""Queueing of requests in a serving fleet: a replica with B continuous-batching slots is B servers,
R replicas behind one load balancer are an M/G/c queue with c = R x B servers, Poisson arrivals at
``arrival_rate_per_s`` and a general service time (mean ``service_time_s``, squared coefficient of
variation ``service_cv2``). Every function broadcasts over numpy columns (no loops over rows; the
server search is a bounded number of vectorised bisection steps).

Sources:
- Erlang B and Erlang C (M/M/c/c and M/M/c): Kleinrock 1975, 'Queueing Systems Vol. 1: Theory',
  Ch. 3; Gross & Harris, 'Fundamentals of Queueing Theory', Ch. 2. With offered load
  a = lambda / mu and rho = a / c, B(c, a) = (a^c / c!) / sum_{k<=c} a^k / k! is the Poisson pmf at
  c over the Poisson cdf at c, here evaluated in log space (pmf = exp(c ln a - a - ln c!), cdf =
  Q(c + 1, a), the regularised upper incomplete gamma function), and
  C(c, a) = B / (1 - rho (1 - B)).
- M/M/c waiting time (Gross & Harris, Ch. 2): P(W > 0) = C(c, a), the mean is
  C / (c mu - lambda) and the tail is P(W > t) = C exp(-(c mu - lambda) t).
- Allen-Cunneen approximation for G/G/c (Allen 1990, 'Probability, Statistics and Queueing Theory
  with Computer Science Applications', 2nd ed.): W_q(G/G/c) ~ W_q(M/M/c) x (Ca^2 + Cs^2) / 2;
  with Poisson arrivals Ca^2 = 1, so the factor is (1 + service_cv2) / 2. Its mean is exact for
  M/G/1 (Pollaczek-Khinchine) and for M/M/c.
- Little's law (Little 1961, 'A Proof for the Queuing Formula L = lambda W'): the mean number in a
  system equals the arrival rate times the mean time spent in it.

Approximation: scaling the whole M/M/c waiting-time tail by the Allen-Cunneen factor
(``wait_quantile_s``) keeps P(W > 0) = C(c, a) and stretches the exponential tail so that its mean
matches Allen-Cunneen. It is exact for M/M/c only; ``tests/test_queueing.py`` measures it against a
discrete-event simulation (deterministic, gamma and exponential service times).

An unstable queue (rho >= 1, or no servers) has Erlang C = 1 and infinite waits.
"""

from __future__ import annotations

import numpy as np

from costmodel.specs.columns import Array, as_array

#: Below this Poisson cdf (an offered load far above the servers, a >> c) the log-space ratio
#: pmf / cdf would underflow to 0 / 0; Erlang B is then summed from its series in c / a instead.
_TINY_CDF = 1e-250
#: Terms of that series: its ratio is at most c / a, and the cdf only underflows when
#: c (a/c - 1 - ln(a/c)) > ~575, which bounds c / a away from 1 enough for 4,000 terms (c <= 10^6).
_SERIES_TERMS = 4000


def _erlang_b_series(c: Array, a: Array) -> Array:
    """1 / B(c, a) = sum_{j=0..c} c (c-1) ... (c-j+1) / a^j, for a >> c (geometric decay)."""
    total = np.ones_like(a)
    term = np.ones_like(a)
    for j in range(_SERIES_TERMS):
        term = np.where(c - j > 0, term * np.maximum(c - j, 0.0) / a, 0.0)
        total = total + term
        if not np.any(term > 1e-18 * total):
            break
    return 1.0 / total


def erlang_b(servers: Array, offered_erlangs: Array) -> Array:
    """Erlang B: the probability that all ``servers`` are busy in an M/M/c/c loss system offered
    ``offered_erlangs`` = lambda x mean service time (any load; a loss system is always stable).

    Log space: B = pmf(c; a) / cdf(c; a) of a Poisson(a) variable. Stable for c up to 10^5 and
    beyond, a near c. Worked example: c = 2, a = 1: (1/2) / (1 + 1 + 1/2) = 1/5. No servers: 1;
    no load: 0."""
    from scipy.special import gammaincc, gammaln, xlogy  # here: scipy loads on the first serving plan

    c, a = np.broadcast_arrays(as_array(servers), as_array(offered_erlangs))
    c = np.where(c < 0, np.nan, c)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        log_pmf = xlogy(c, a) - a - gammaln(c + 1.0)
        cdf = gammaincc(c + 1.0, a)
        b = np.exp(log_pmf) / cdf
        far = (cdf < _TINY_CDF) & (a > c) & (c > 0)
        if np.any(far):
            b = np.where(far, _erlang_b_series(np.where(far, c, 0.0), np.where(far, a, 1.0)), b)
    b = np.where(c == 0, 1.0, np.where(a == 0, 0.0, b))
    return np.clip(b, 0.0, 1.0)


def erlang_c(servers: Array, offered_erlangs: Array) -> Array:
    """Erlang C: the probability that an arrival waits in an M/M/c queue with ``servers`` = c and
    ``offered_erlangs`` = a = lambda / mu: C = B / (1 - rho (1 - B)), rho = a / c. 1 where the
    queue is unstable (rho >= 1 or c = 0).

    Worked examples: c = 1: C = rho (M/M/1). c = 2, a = 1: B = 1/5, rho = 1/2,
    C = (1/5) / (1 - (1/2)(4/5)) = 1/3."""
    c, a = np.broadcast_arrays(as_array(servers), as_array(offered_erlangs))
    b = erlang_b(c, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = a / c
        result = b / (1.0 - rho * (1.0 - b))
    result = np.where(rho >= 1.0, 1.0, np.clip(result, 0.0, 1.0))
    return np.where(np.isnan(c) | np.isnan(a) | (c < 0), np.nan, result)


def _erlang_c_below(servers: np.ndarray, offered_erlangs: np.ndarray, level: np.ndarray) -> np.ndarray:
    """True where C(c, a) <= ``level`` is certain from a closed-form upper bound, no special
    function evaluated (False where the bound does not apply or is above ``level``).

    For a whole number of servers c >= a + 1/3 (a > 0, rho = a / c < 1):
    - Stirling, c! >= sqrt(2 pi c) (c/e)^c, bounds the Poisson pmf at c:
      pmf(c; a) <= exp(-c (rho - 1 - ln rho)) / sqrt(2 pi c);
    - the Poisson median is below a + 1/3 (Choi 1994, 'Medians of gamma distributions and an
      equation of Ramanujan'), so cdf(c; a) >= 1/2 and B = pmf / cdf <= 2 pmf;
    - C = B / (1 - rho (1 - B)) <= B / (1 - rho).
    The bound is within a few times C where C is small (many servers at moderate load), which is
    where most rows of a capacity search sit."""
    c, a = servers, offered_erlangs
    applies = (a > 0) & (c >= a + 1.0 / 3.0) & (c == np.floor(c)) & np.isfinite(c)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        rho = a / c
        upper = (2.0 * np.exp(-c * (rho - 1.0 - np.log(rho))) / np.sqrt(2.0 * np.pi * c)
                 / (1.0 - rho))
    return applies & (upper <= level)


def utilization(arrival_rate_per_s: Array, service_time_s: Array, servers: Array) -> Array:
    """rho = lambda x S / c: the mean fraction of busy servers (offered load per server)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return as_array(arrival_rate_per_s) * as_array(service_time_s) / as_array(servers)


def _drain_rate_per_s(arrival_rate_per_s: Array, service_time_s: Array, servers: Array) -> Array:
    """c mu - lambda: the rate at which a queue in front of c busy servers drains."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return as_array(servers) / as_array(service_time_s) - as_array(arrival_rate_per_s)


def mean_wait_s(arrival_rate_per_s: Array, service_time_s: Array, servers: Array,
                service_cv2: Array = 1.0) -> Array:
    """Mean queueing delay (before service starts) of M/G/c, Allen-Cunneen:
    C(c, a) / (c mu - lambda) x (1 + cv2) / 2. inf where unstable.

    Worked example (M/M/1, c = 1): C = rho, so W_q = rho / (mu - lambda); lambda = 0.5/s,
    S = 1 s: 0.5 / 0.5 = 1 s. M/D/1 (cv2 = 0) halves it (Pollaczek-Khinchine)."""
    lam, s, c, cv2 = np.broadcast_arrays(as_array(arrival_rate_per_s), as_array(service_time_s),
                                         as_array(servers), as_array(service_cv2))
    a = lam * s
    ec = erlang_c(c, a)
    drain = _drain_rate_per_s(lam, s, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = ec / drain * (1.0 + cv2) / 2.0
    w = np.where(ec >= 1.0, np.inf, np.where(ec == 0.0, 0.0, w))
    return np.where(np.isnan(ec) | np.isnan(cv2), np.nan, w)


def wait_quantile_s(q: Array, arrival_rate_per_s: Array, service_time_s: Array, servers: Array,
                    service_cv2: Array = 1.0) -> Array:
    """The q-quantile of the queueing delay of M/G/c. From the M/M/c tail
    P(W > t) = C exp(-(c mu - lambda) t): 0 where C <= 1 - q (at least a fraction q of requests
    start at once), else ln(C / (1 - q)) / (c mu - lambda) x (1 + cv2) / 2. inf where unstable
    (any q) and for q = 1 when anyone waits; nan for q outside [0, 1].

    Scaling the tail by the Allen-Cunneen factor (1 + cv2)/2 is an approximation (exact for M/M/c):
    it keeps the M/M/c probability of waiting and stretches the exponential tail to the
    Allen-Cunneen mean. The simulation tests in tests/test_queueing.py measure its error."""
    q, lam, s, c, cv2 = np.broadcast_arrays(as_array(q), as_array(arrival_rate_per_s),
                                            as_array(service_time_s), as_array(servers),
                                            as_array(service_cv2))
    a = lam * s
    tail = 1.0 - q
    # Where a closed-form bound puts C below half the tail the quantile is 0 whatever C's exact
    # value; Erlang C (log-gamma, incomplete gamma) is evaluated on the other rows only.
    small = _erlang_c_below(c, a, 0.5 * tail) if c.ndim else np.zeros(c.shape, dtype=bool)
    if np.any(small):
        ec = np.zeros(c.shape)  # stands for C <= tail / 2: only compared with the tail below
        rest = ~small
        ec[rest] = erlang_c(c[rest], a[rest])
    else:
        ec = erlang_c(c, a)
    drain = _drain_rate_per_s(lam, s, c)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log(ec / tail) / drain * (1.0 + cv2) / 2.0
    t = np.where(ec <= tail, 0.0, t)
    t = np.where(ec >= 1.0, np.inf, t)
    bad = np.isnan(q) | (q < 0.0) | (q > 1.0) | np.isnan(ec) | np.isnan(cv2) | np.isnan(t)
    return np.where(bad, np.nan, t)


def littles_law_concurrency(arrival_rate_per_s: Array, time_in_system_s: Array) -> Array:
    """Little's law: mean number in the system L = lambda x W (e.g. W = mean wait + service time
    gives the mean number of requests queued or in a slot)."""
    return as_array(arrival_rate_per_s) * as_array(time_in_system_s)


def min_servers_groups(arrival_rate_per_s: Array, service_time_s: Array, slots_per_group: Array,
                       max_utilization: Array, wait_budget_s: Array, q: Array = 0.95,
                       service_cv2: Array = 1.0, max_groups: Array = 1_000_000,
                       return_wait: bool = False) -> Array | tuple[Array, Array]:
    """The smallest whole number of groups (replicas) R >= 1 with c = R x ``slots_per_group``
    servers such that the queue is stable, ``utilization`` <= ``max_utilization`` and
    ``wait_quantile_s(q)`` <= ``wait_budget_s`` (inf: no latency objective). Float array; inf
    where no R <= ``max_groups`` qualifies (e.g. a negative budget); nan where an input is nan.

    Both constraints only loosen as R grows, so the answer is found by integer bisection between
    the utilization bound floor(a / (B u_max)) - 1 (infeasible) and an upper bound doubled until
    feasible: at most ~2 log2(max_groups) vectorised steps.

    ``return_wait``: also return ``wait_quantile_s(q, ...)`` at the answer's servers (one group's
    where no R qualifies), the value the search already computed where it checked the budget."""
    arrays = np.broadcast_arrays(
        as_array(arrival_rate_per_s), as_array(service_time_s), as_array(slots_per_group),
        as_array(max_utilization), as_array(wait_budget_s), as_array(q), as_array(service_cv2),
        np.floor(as_array(max_groups)))
    shape = arrays[0].shape
    lam, s, b, umax, budget, q, cv2, gmax = (np.array(x, dtype=np.float64).reshape(-1) for x in arrays)
    nan_in = np.zeros(lam.shape, dtype=bool)
    for x in (lam, s, b, umax, budget, q, cv2, gmax):
        nan_in |= np.isnan(x)
    a = lam * s
    wait_at = np.full(lam.shape, np.nan)  # wait quantile at each row's feasible hi, once computed

    def feasible(groups: Array, rows: np.ndarray) -> Array:
        """Feasibility of ``groups`` groups for the rows ``rows`` only (the others are settled)."""
        c = groups * b[rows]
        rho = utilization(lam[rows], s[rows], c)
        ok = ((groups >= 1) & (b[rows] > 0) & (rho <= umax[rows]) & ((rho < 1.0) | (a[rows] == 0))
              & ~nan_in[rows])
        # The wait quantile (the costly part) only where a finite budget can still fail.
        check = np.flatnonzero(ok & np.isfinite(budget[rows]))
        if check.size:
            r = rows[check]
            wait = wait_quantile_s(q[r], lam[r], s[r], c[check], cv2[r])
            ok[check] = good = wait <= budget[r]
            wait_at[r[good]] = wait[good]  # where the rows' hi moves to these groups (feasible)
        return ok

    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(a == 0, 0.0, a / (b * umax))  # R >= bound for the utilization limit
    bound = np.where(np.isnan(bound) | (b <= 0), np.inf, bound)
    hopeless = nan_in | ~(bound <= gmax) | (gmax < 1)
    lo = np.clip(np.floor(np.where(hopeless, 0.0, bound)) - 1.0, 0.0, None)  # infeasible (or 0)
    hi = np.clip(np.maximum(lo + 1.0, np.ceil(np.where(hopeless, 1.0, bound))), 1.0, None)
    hi = np.minimum(hi, np.maximum(gmax, 1.0))

    # Double the upper bound until it is feasible or reaches max_groups.
    ok_hi = feasible(hi, np.arange(lam.size))
    top = np.maximum(gmax, 1.0)
    for _ in range(64):
        grow = np.flatnonzero(~ok_hi & ~hopeless & (hi < top))
        if grow.size == 0:
            break
        lo[grow] = hi[grow]
        hi[grow] = np.minimum(2.0 * hi[grow], top[grow])
        ok_hi[grow] = feasible(hi[grow], grow)
    found = ok_hi & ~hopeless

    # Bisection: lo infeasible (or 0), hi feasible; only the unsettled rows are evaluated.
    for _ in range(80):
        active = np.flatnonzero(found & (hi - lo > 1.0))
        if active.size == 0:
            break
        mid = np.floor((lo[active] + hi[active]) / 2.0)
        ok_mid = feasible(mid, active)
        hi[active] = np.where(ok_mid, mid, hi[active])
        lo[active] = np.where(ok_mid, lo[active], mid)

    groups = np.where(nan_in, np.nan, np.where(found, hi, np.inf))
    if not return_wait:
        return groups.reshape(shape)
    wait = _wait_at_groups(wait_at, found & ~nan_in, groups, q, lam, s, b, cv2)
    return groups.reshape(shape), wait.reshape(shape)


def _wait_at_groups(wait_at: np.ndarray, found: np.ndarray, groups: np.ndarray, q, lam, s, b, cv2
                    ) -> np.ndarray:
    """``min_servers_groups(return_wait=True)``'s wait: the one the search computed at the
    answer where it did (``wait_at`` not nan), else ``wait_quantile_s`` at max(groups, 1 where
    none qualifies) x slots (no finite budget, no answer, nan inputs)."""
    need = ~(found & ~np.isnan(wait_at))
    wait = np.where(need, np.nan, wait_at)
    if np.any(need):
        wait[need] = wait_quantile_s(q[need], lam[need], s[need],
                                     np.nan_to_num(groups[need], posinf=1.0) * b[need], cv2[need])
    return wait
