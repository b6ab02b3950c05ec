"""The demo's summary table and its self-contained HTML report (inline SVG, no scripts).

Everything in it comes from the run: what the services answered over their HTTP APIs
(matches and their explanations, alerts, site summaries with therapist estimates, episode
charts drawn by analytics), what the front-end received (verified webhooks), what the simulated
clients did, and the counterfactual arms of ``rapport.simulate_arms``.

Over 500 lines: the report is one document (the console summary, the page template and the
observations it reads); its charts are in ``rapport.report_charts``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from rapport.report_charts import Row, alert_timeline_svg, forest_svg
from rapport.report_follow_up import follow_up_counts, follow_up_html
from rapport.report_goals import goals_by_site, goals_html, goals_json
from rapport.simulate import Network
from rapport.simulate_arms import MIN_EVENTS, Arms, Comparison, Difference
from rapport.simulate_attendance import AttendanceFigures
from rapport.simulate_live import AlertInbox, LiveRun
from services.analytics.domain import by_urgency, plain_name
from services.analytics.effectiveness import MIN_CASES, not_enough_data
from shared.auth import mint_token
from shared.settings import Settings


@dataclass
class Observed:
    """What the services answered over their APIs after the run."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    charts: list[tuple[str, str, str]] = field(default_factory=list)  # (title, why, svg)
    follow_up: dict[str, dict[str, Any]] = field(default_factory=dict)  # by site


async def observe(
    http: httpx.AsyncClient, settings: Settings, network: Network, live: LiveRun
) -> Observed:
    seen = Observed()
    for site in network.sites:
        lead = {
            "Authorization": "Bearer " + mint_token(settings, "lead", "clinical_lead", [site.id])
        }
        offset = 0
        while True:
            page = await http.get(
                "/analytics/alerts",
                headers=lead,
                params={"site_id": site.id, "status": "all", "limit": 500, "offset": offset},
            )
            page.raise_for_status()
            rows = page.json()
            # Only this run's episodes (a real database may hold earlier runs).
            seen.alerts.extend(r for r in rows if r["episode_id"] in live.courses)
            if len(rows) < 500:
                break
            offset += 500
        summary = await http.get(f"/analytics/sites/{site.id}/summary", headers=lead)
        summary.raise_for_status()
        seen.summaries[site.id] = summary.json()
        follow_up = await http.get(f"/analytics/sites/{site.id}/follow-up", headers=lead)
        follow_up.raise_for_status()
        seen.follow_up[site.id] = follow_up.json()
    for title, why, episode_id in _examples(live):
        site_id = live.courses[episode_id].client.site_id
        lead = {
            "Authorization": "Bearer " + mint_token(settings, "lead", "clinical_lead", [site_id])
        }
        chart = await http.get(f"/analytics/episodes/{episode_id}/chart.svg", headers=lead)
        if chart.status_code == 200:
            seen.charts.append((title, why, chart.text))
    return seen


def _examples(live: LiveRun) -> list[tuple[str, str, str]]:
    """A few episodes worth looking at: a rupture repaired after the alert, one never
    repaired, a couple with a split alliance, a client who deteriorated."""
    picks: list[tuple[str, str, str]] = []
    chosen: set[str] = set()

    def pick(title: str, why: str, test: Any) -> None:
        for episode_id, course in live.courses.items():
            if episode_id not in chosen and test(course) and course.session_number >= 6:
                picks.append((title, why, episode_id))
                chosen.add(episode_id)
                return

    pick(
        "A rupture, caught and repaired",
        "The client's alliance score fell by more than the reliable-change threshold (▼); "
        "the therapist received the rupture alert before the next session and the alliance "
        "recovered (○).",
        lambda c: c.repairs_after_alert > 0,
    )
    pick(
        "A rupture that stayed open",
        "The alliance dropped and did not recover within three sessions: analytics raised "
        "an unresolved-rupture alert for the supervisor.",
        lambda c: c.ruptures > 0 and c.repairs == 0,
    )
    pick(
        "A couple with a split alliance",
        "Each partner rates the alliance; when their ratings part by the reliable-change "
        "threshold the episode gets a split-alliance alert.",
        lambda c: c.splits > 0,
    )
    pick(
        "A client going the wrong way",
        "The outcome score (ORS) fell reliably below the first one: a deterioration alert for "
        "the therapist (and, without reliable improvement by session 4, not-on-track).",
        lambda c: min(r.ors for r in c.history) <= c.client.intake_ors - 5,
    )
    return picks


@dataclass
class Result:
    network: Network
    live: LiveRun
    observed: Observed
    arms: Arms
    inbox: AlertInbox
    seconds: float
    stack: str = "embedded"
    attendance: AttendanceFigures = field(default_factory=AttendanceFigures)

    def counts(self) -> dict[str, Any]:
        courses = list(self.live.courses.values())
        opened = Counter(a["kind"] for a in self.observed.alerts)
        return {
            "clients": len(self.network.clients),
            "matched": len(self.live.matches),
            "matched_all_constraints": sum(m.status == "matched" for m in self.live.matches),
            "unmatched": len(self.live.unmatched),
            "sessions": sum(c.session_number for c in courses),
            "responses": self.live.responses,
            "alerts_by_kind": dict(sorted(opened.items())),
            "alerts": sum(opened.values()),
            "ruptures_simulated": sum(c.ruptures for c in courses),
            "ruptures_detected": opened.get("rupture", 0),
            "repairs_simulated": sum(c.repairs for c in courses),
            "repairs_detected": opened.get("repair", 0),
            "repairs_after_alert": sum(c.repairs_after_alert for c in courses),
            "split_alliances_simulated": sum(c.splits for c in courses),
            "risk_answers": sum(c.risk_answers for c in courses),
            "webhooks_delivered": len(self.inbox.received),
            "webhooks_rejected": self.inbox.rejected,
            "dropped_out": sum(c.ended == "dropped_out" for c in courses),
            "completed": sum(c.ended == "completed" for c in courses),
            "still_in_therapy": sum(c.ended is None for c in courses),
            "requests": self.live.requests,
            "seconds": round(self.seconds, 1),
            "attendance": self.attendance.to_json(),
            "follow_up": follow_up_counts(
                self.observed.follow_up, self.live.actions, self.live.actions_refused
            ),
            "goals": goals_json(goals_by_site(self.live, self.observed.alerts)),
        }


def caught_days(a: dict[str, Any]) -> str:
    """How many days before the drop-out the first attendance alert came: median (range)."""
    if not a["dropouts_caught"]:
        return "none caught"
    low, high = a["days_before_dropout_min"], a["days_before_dropout_max"]
    return f"{a['days_before_dropout_median']:g} days (range {low}–{high})"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def print_summary(result: Result, console: Console) -> None:
    c = result.counts()
    table = Table(title="What happened", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("clients referred", c["clients"]),
        ("matched (every hard constraint met)", f"{c['matched']} ({c['matched_all_constraints']})"),
        ("sessions with feedback", c["sessions"]),
        ("questionnaires recorded", c["responses"]),
        (
            "ruptures (simulated / detected)",
            f"{c['ruptures_simulated']} / {c['ruptures_detected']}",
        ),
        ("repairs (simulated / detected)", f"{c['repairs_simulated']} / {c['repairs_detected']}"),
        ("  of which after the therapist got the alert", c["repairs_after_alert"]),
        (
            "signed webhooks delivered (rejected)",
            f"{c['webhooks_delivered']} ({c['webhooks_rejected']})",
        ),
        (
            "dropped out / completed / still in therapy",
            f"{c['dropped_out']} / {c['completed']} / {c['still_in_therapy']}",
        ),
        (
            "sessions booked / missed / cancelled (client, clinic)",
            f"{c['attendance']['booked_sessions']} / {c['attendance']['missed']} / "
            f"{c['attendance']['cancelled_by_client']}, {c['attendance']['cancelled_by_clinic']}",
        ),
        (
            "drop-outs caught before they became one",
            f"{c['attendance']['dropouts_caught']} of {c['attendance']['dropouts']}, "
            f"{caught_days(c['attendance'])} before",
        ),
        ("actions recorded on alerts", c["follow_up"]["actions_recorded"]),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)

    kinds = Table(title="Alerts opened by kind")
    kinds.add_column("alert")
    kinds.add_column("opened", justify="right")
    for kind in by_urgency(c["alerts_by_kind"]):
        kinds.add_row(plain_name(kind), str(c["alerts_by_kind"][kind]))
    console.print(kinds if c["alerts_by_kind"] else "No alerts were raised in this run.")

    matches = Table(title="First matches and why")
    matches.add_column("client")
    matches.add_column("therapist")
    matches.add_column("explanation")
    for match in result.live.matches[:5]:
        matches.add_row(match.client_id, match.chosen, _explanation(match.options, match.chosen))
    console.print(matches)

    for comparison in result.arms.comparisons:
        t = Table(title=f"{comparison.title} (n = {comparison.n} clients)")
        t.add_column("outcome")
        t.add_column(comparison.arm_a, justify="right")
        t.add_column(comparison.arm_b, justify="right")
        t.add_column("difference, points [95% CI]", justify="right")
        for d in comparison.differences:
            t.add_row(d.measure, _pct(d.a.value), _pct(d.b.value), _difference(d, "").strip())
        console.print(t)


def _explanation(options: Sequence[dict[str, Any]], chosen: str) -> str:
    for option in options:
        if option.get("therapist_id") == chosen:
            reasons = option.get("reasons") or option.get("explanation") or []
            if isinstance(reasons, str):
                return reasons
            parts = []
            for reason in reasons[:4]:
                if isinstance(reason, dict):
                    parts.append(str(reason.get("text") or reason.get("reason") or reason))
                else:
                    parts.append(str(reason))
            return "; ".join(parts)
    return ""


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.45}
h1{margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.lede{color:#57606a} table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:26px} .why{color:#57606a;font-size:14px;max-width:760px}
figure{margin:1em 0} svg{max-width:100%;height:auto} .none{color:#57606a;font-style:italic}
"""


def _card(value: Any, label: str) -> str:
    return f'<div class="card"><b>{escape(str(value))}</b>{escape(label)}</div>'


def _difference(d: Difference, unit: str = " points") -> str:
    """A difference between arms: with its 95% interval, or saying why there is none."""
    if d.low is None or d.high is None:
        return f"{_pp(d.estimate)}{unit} ({d.note})"
    return f"{_pp(d.estimate)}{unit} [{_pp(d.low)}, {_pp(d.high)}]"


def _note(text: str) -> str:
    return f'<p class="none">{escape(text)}</p>'


def _comparison_html(comparison: Comparison) -> str:
    rows = "".join(
        f"<tr><td>{escape(d.measure)}</td>"
        f'<td class="n">{_pct(d.a.value)} [{_pct(d.a.low)}–{_pct(d.a.high)}]</td>'
        f'<td class="n">{_pct(d.b.value)} [{_pct(d.b.low)}–{_pct(d.b.high)}]</td>'
        f'<td class="n">{_difference(d)}</td></tr>'
        for d in comparison.differences
    )
    est, low, high = comparison.ors_difference
    ors = (
        f"{est:+.1f} (too few clients or no variation for an interval)"
        if low is None or high is None
        else f"{est:+.1f} [{low:+.1f}, {high:+.1f}]"
    )
    rows += (
        f'<tr><td>mean ORS change (points)</td><td class="n">{comparison.ors_change_a:+.1f}</td>'
        f'<td class="n">{comparison.ors_change_b:+.1f}</td><td class="n">{ors}</td></tr>'
    )
    if comparison.n == 0:
        return f"<h3>{escape(comparison.title)}</h3>" + _note(
            "No client was in both arms: nothing to compare."
        )
    chart = forest_svg(
        [Row(d.measure, d.estimate, d.low, d.high, d.note) for d in comparison.differences],
        label="difference in percentage points (left column minus right column)",
        aria=comparison.title,
    )
    return (
        f"<h3>{escape(comparison.title)}</h3>"
        f"<table><tr><th>outcome (n = {comparison.n} clients)</th>"
        f"<th>{escape(comparison.arm_a)}</th><th>{escape(comparison.arm_b)}</th>"
        f"<th>difference [95% CI]</th></tr>{rows}</table>"
        f"<figure>{chart}</figure>"
    )


def _effectiveness(result: Result) -> tuple[str, str]:
    """Per therapist, for the commonest domain: the shrunken rate of reliable improvement with
    its interval for those with enough closed cases, "not enough data (n of 15 cases)" for the
    rest (as the site report prints it)."""
    entries = [t for s in result.observed.summaries.values() for t in s.get("therapists", [])]
    domains = Counter(t["domain"] for t in entries)
    if not domains:
        return "", _note("No closed episodes yet: nothing to estimate.")
    domain = domains.most_common(1)[0][0]
    best: dict[str, dict[str, Any]] = {}  # one row per therapist: the estimate with most cases
    for t in entries:
        if t["domain"] == domain:
            if t["therapist_id"] not in best or t["n"] > best[t["therapist_id"]]["n"]:
                best[t["therapist_id"]] = t
    estimated = [
        t
        for t in best.values()
        if t.get("status", "estimated") == "estimated" and t.get("reliable_improvement_rate")
    ]
    too_few = sorted(
        (t for t in best.values() if t not in estimated), key=lambda t: (-t["n"], t["therapist_id"])
    )
    parts = []
    if estimated:
        rows = sorted(
            (
                Row(
                    f"{t['therapist_id']} (n={t['n']}, {t['classification'].replace('_', ' ')})",
                    t["reliable_improvement_rate"]["estimate"],
                    t["reliable_improvement_rate"]["lower"],
                    t["reliable_improvement_rate"]["upper"],
                )
                for t in estimated
            ),
            key=lambda r: -r.estimate,
        )
        figure = forest_svg(
            rows,
            label=f"rate of reliable improvement in {domain} (%), shrunk toward the site mean",
            reference=None,
            low=0.0,
            high=1.0,
            aria=f"Therapist effectiveness in {domain} with 95% intervals",
        )
        parts.append(f"<figure>{figure}</figure>")
    else:
        parts.append(
            _note(
                f"No therapist has {MIN_CASES} closed cases in {domain} yet, so none has an "
                "estimate: a rate from fewer cases would look more certain than it is."
            )
        )
    if too_few:
        cells = "".join(
            f"<tr><td>{escape(t['therapist_id'])}</td>"
            f"<td>{escape(not_enough_data(t['n'], t.get('min_cases', MIN_CASES)))}</td></tr>"
            for t in too_few
        )
        parts.append(
            f"<table><tr><th>therapist</th><th>reliable improvement in {escape(domain)}</th></tr>"
            f"{cells}</table>"
        )
    return domain, "".join(parts)


def html(result: Result) -> str:
    """The report page: one template that reads top to bottom like the page it makes (cut into
    functions, the page's order would be scattered over the module)."""
    c = result.counts()
    a = c["attendance"]
    net = result.network
    live_cmp = result.arms.comparisons[0]
    match_cmp = result.arms.comparisons[1]

    def headline(comparison: Comparison, index: int) -> str:
        return _difference(comparison.differences[index])

    kinds_rows = "".join(
        f'<tr><td>{escape(plain_name(k))}</td><td class="n">{c["alerts_by_kind"][k]}</td></tr>'
        for k in by_urgency(c["alerts_by_kind"])
    )
    kinds = (
        f"<table><tr><th>alert</th><th>opened</th></tr>{kinds_rows}</table>"
        if kinds_rows
        else _note("No alerts were raised in this run.")
    )
    match_rows = "".join(
        f"<tr><td>{escape(m.client_id)}</td><td>{escape(m.chosen)}</td>"
        f"<td>{escape(_explanation(m.options, m.chosen))}</td><td>{escape(m.summary)}</td></tr>"
        for m in result.live.matches[:8]
    )
    matches = (
        "<table><tr><th>client</th><th>therapist</th><th>why this therapist</th>"
        f"<th>proposal</th></tr>{match_rows}</table>"
        if match_rows
        else _note("No client was matched in this run.")
    )
    charts = "".join(
        f'<h3>{escape(title)}</h3><p class="why">{escape(why)}</p><figure>{svg}</figure>'
        for title, why, svg in result.observed.charts
    ) or _note(
        "No episode in this run reached six sessions with a rupture, a split alliance or a "
        "deterioration to show."
    )
    timeline = (
        f"<figure>{alert_timeline_svg(result.live.alerts_by_week, net.weeks)}</figure>"
        if any(result.live.alerts_by_week.values())
        else _note("No alerts were delivered in this run.")
    )
    domain, effectiveness = _effectiveness(result)
    arm_rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="n">{len(outcomes)}</td>'
        f'<td class="n">{_pct(sum(o.recovered for o in outcomes) / max(1, len(outcomes)))}</td>'
        f'<td class="n">{_pct(sum(o.deteriorated for o in outcomes) / max(1, len(outcomes)))}</td>'
        f'<td class="n">{_pct(sum(o.dropped_out for o in outcomes) / max(1, len(outcomes)))}</td></tr>'
        for name, outcomes in result.arms.outcomes.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rapport demo report</title>
<style>{CSS}</style></head><body>
<h1>Rapport — a simulated counselling network</h1>
<p class="lede">{len(net.sites)} sites, {len(net.therapists)} therapists and {c["clients"]} clients
over {net.weeks} weeks (seed {net.seed}), run through the real intake, feedback, analytics and notify
services (stack: {escape(result.stack)}) in {c["seconds"]} s. The clients are simulated; every match, score,
alert and notification below was produced by the services.</p>

<div class="cards">
{_card(c["matched"], "clients matched")}
{_card(c["sessions"], "sessions with feedback")}
{_card(c["alerts"], "alerts raised")}
{_card(c["webhooks_delivered"], "notifications delivered")}
{_card(f"{c['repairs_simulated']}/{c['ruptures_simulated']}", "ruptures repaired")}
{_card(c["dropped_out"], "drop-outs")}
</div>

<h2>Why it matters, in this run</h2>
<p>When therapists received the alerts, the share of clients who recovered changed by
<b>{headline(live_cmp, 0)}</b> and drop-out by <b>{headline(live_cmp, 3)}</b>, compared with the same
clients and therapists without alerts. Matching instead of giving each client the first therapist
with a free place changed recovery by <b>{headline(match_cmp, 0)}</b>. These are differences between
arms of this simulation (same clients, same luck), with 95% confidence intervals; they show what the
simulator's assumptions imply, not a clinical trial result.</p>

<h2>What happened</h2>
<table>
<tr><td>clients referred / matched / left unmatched</td><td class="n">{c["clients"]} / {c["matched"]} / {c["unmatched"]}</td></tr>
<tr><td>matches meeting every hard constraint</td><td class="n">{c["matched_all_constraints"]}</td></tr>
<tr><td>sessions with feedback / questionnaires recorded</td><td class="n">{c["sessions"]} / {c["responses"]}</td></tr>
<tr><td>ruptures simulated / detected by analytics</td><td class="n">{c["ruptures_simulated"]} / {c["ruptures_detected"]}</td></tr>
<tr><td>repairs simulated / detected / after the therapist got the alert</td><td class="n">{c["repairs_simulated"]} / {c["repairs_detected"]} / {c["repairs_after_alert"]}</td></tr>
<tr><td>couples whose partner's rating parted from the client's (simulated)</td><td class="n">{c["split_alliances_simulated"]}</td></tr>
<tr><td>risk answers (PHQ-9 item 9)</td><td class="n">{c["risk_answers"]}</td></tr>
<tr><td>signed webhooks delivered / rejected by the front-end</td><td class="n">{c["webhooks_delivered"]} / {c["webhooks_rejected"]}</td></tr>
<tr><td>completed / dropped out / still in therapy at the end</td><td class="n">{c["completed"]} / {c["dropped_out"]} / {c["still_in_therapy"]}</td></tr>
</table>

<h3>Alerts by kind</h3>
{kinds}

<h2>Attendance: the client who stops coming</h2>
<p class="why">Each client's sessions laid out as a diary booked weekly at a site-local time in the
site's time zone, with sessions missed or cancelled now and then and the silent drop-out of the
clients who stopped coming, replayed offline through the analytics rules on the replay's clock
(<code>rapport replay</code>: missed sessions, no contact for 21 days). A drop-out becomes one 28
days (site-local) after the last contact; it is caught when a missed-sessions or no-contact alert
came after that last contact and before then.</p>
<table>
<tr><td>sessions booked / attended</td><td class="n">{a["booked_sessions"]} / {a["attended"]}</td></tr>
<tr><td>sessions missed (did not attend)</td><td class="n">{a["missed"]}</td></tr>
<tr><td>sessions cancelled by the client / by the clinic</td><td class="n">{a["cancelled_by_client"]} / {a["cancelled_by_clinic"]}</td></tr>
<tr><td>missed-sessions alerts (two missed in a row)</td><td class="n">{a["missed_sessions_alerts"]}</td></tr>
<tr><td>drop-outs / caught by an attendance alert before they became one</td><td class="n">{a["dropouts"]} / {a["dropouts_caught"]}</td></tr>
<tr><td>first alert: missed sessions / no contact</td><td class="n">{a["caught_by"].get("missed_sessions", 0)} / {a["caught_by"].get("no_contact", 0)}</td></tr>
<tr><td>days before the drop-out the first alert came (median, range)</td><td class="n">{escape(caught_days(a))}</td></tr>
</table>

<h2>Follow-up: what was done about the alerts</h2>
<p class="why">The simulated therapists record a coded action on most alerts they receive (a rupture
discussed in session, a changed approach for a client off track, a safety plan for every risk, now and
then "no action needed"), most before the next session and the rest after it. Analytics' follow-up
figures for each site (<code>/analytics/sites/{{id}}/follow-up</code>): per action, the share of the
alerts acted on that their rule resolved within 2 and within 4 sessions of the action, with its 95%
interval and n (the alerts old enough to tell), and the median time from an alert's opening to its
first action (wall-clock: here a simulated week passes in seconds).</p>
{follow_up_html(result.observed.follow_up, result.live.actions, result.live.actions_refused)}

{goals_html(goals_by_site(result.live, result.observed.alerts))}
<h2>Matches and their explanations</h2>
<p class="why">Each intake gets the top options with the reasons for each; here the client takes the
first. The first few of the run:</p>
{matches}

<h2>Alliance trajectories</h2>
<p class="why">Charts drawn by the analytics service (<code>/analytics/episodes/{{id}}/chart.svg</code>):
the alliance (SRS; concern below 36) and the outcome (ORS; clinical cutoff 25) by session, and every
alert the episode raised, each titled with its site, therapist and sessions.</p>
{charts}

<h2>Alert timeline</h2>
<p class="why">Alerts delivered to therapists' front-ends (signed webhooks) per week, by kind. Early
weeks bring early-alliance alerts as clients start; ruptures, deterioration and not-on-track follow.</p>
{timeline}

<h2>Therapist effectiveness{f" in {escape(domain)}" if domain else ""}</h2>
<p class="why">Analytics' estimates from closed episodes: each therapist's rate of reliable improvement,
shrunk toward the site mean (empirical Bayes), with its 95% interval and number of cases. A therapist
is estimated only with at least {MIN_CASES} closed cases in a domain, and classed effective or ineffective
only when its interval excludes the site's rate; below that it is "not enough data" — in a 16-week run,
most are.</p>
{effectiveness}

<h2>Alerts on vs off, matching vs first available</h2>
<p class="why">The same clients, with the same random draws, under other conditions: the live run
(matched by the intake service, therapists receiving what notify delivered) against the same
therapists without alerts, and against the first therapist with a free place (with and without
alerts, the analytics rules run offline). Rates with Wilson 95% intervals; differences with 95%
intervals for paired data, given only when each arm has at least {MIN_EVENTS} clients with the outcome
and {MIN_EVENTS} without (else "too few events for an interval"). For recovery and improvement a positive difference favours the left
column; for deterioration and drop-out a negative one does.</p>
<table><tr><th>arm</th><th>clients</th><th>recovered</th><th>deteriorated</th><th>dropped out</th></tr>{arm_rows}</table>
{"".join(_comparison_html(x) for x in result.arms.comparisons)}

<h2>How this was made</h2>
<p class="why">Simulator parameters and their sources: <code>docs/simulation.md</code>. Recovered =
reliable (≥ 5 ORS points) and clinically significant (from below 25 to 25 or above) change; deteriorated
= reliably worse than at intake (Jacobson &amp; Truax 1991). Re-run with <code>rapport demo --seed N</code>
for another network.</p>
</body></html>
"""


def write(result: Result, out: Path) -> Path:
    import json

    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(html(result), encoding="utf-8")
    summary = dict(result.counts())
    summary["comparisons"] = [
        {
            "title": x.title,
            "a": x.arm_a,
            "b": x.arm_b,
            "n": x.n,
            "differences": [
                {
                    "measure": d.measure,
                    "a": d.a.value,
                    "b": d.b.value,
                    "estimate": d.estimate,
                    "low": d.low,  # null: no interval, "note" says why
                    "high": d.high,
                    "note": d.note,
                }
                for d in x.differences
            ],
        }
        for x in result.arms.comparisons
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return path
