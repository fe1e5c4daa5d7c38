"""The guard in the console: its verdict in words, and both versions' running values with their bands as the
watched traffic grows (textual-plotext, the `console` extra; without it the words alone)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from memabra.guarding import GuardCheck
from memabra.results import GuardStatus

try:
    from textual_plotext import PlotextPlot
except ImportError:  # the console works without the plot
    PlotextPlot = None

VERDICT_STYLES = {"regressed": "bold red", "rolled_back": "bold red", "healthy": "green", "watching": "yellow",
                  "idle": "dim"}


def guard_text(guard: GuardStatus | None) -> Text:
    """The guard's lines of the status panel: mode and verdict, which version on how much traffic, the difference."""
    text = Text()
    if guard is None:
        return text
    text.append(f"{'guard':<10}", style="dim")
    if guard.mode == "off":
        text.append("off", style="dim")
        return text
    verdict = "REGRESSED" if guard.alert else (guard.verdict or "–")
    text.append(verdict, style=VERDICT_STYLES.get(guard.verdict or "", ""))
    text.append(f" ({guard.mode})", style="dim")
    if guard.promoted_version_id and guard.verdict not in ("idle", None):
        text.append(f"\n{'watching':<10}", style="dim")
        text.append(f"{guard.promoted_version_id} (vs prior)")
        text.append(f"\n{'traffic':<10}", style="dim")
        text.append(f"{guard.used_count:,} served" + (f" of {guard.min_traffic:,} needed"
                                                        if guard.min_traffic and guard.used_count < guard.min_traffic
                                                        else ""))
    difference = guard.difference
    if difference is not None:
        text.append(f"\n{'Δvalue':<10}", style="dim")
        text.append(f"{difference.estimate:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}] "
                    f"{difference.level:.0%}", style=VERDICT_STYLES.get(guard.verdict or "", ""))
    elif guard.verdict == "idle" or guard.reason:
        text.append(f"\n{guard.reason}", style="dim")
    return text


class GuardPanel(Vertical):
    """The guard's running values: the active and the prior version's value with their anytime-valid bands."""

    DEFAULT_CSS = """
    GuardPanel { height: auto; }
    GuardPanel #guard-plot { height: 12; margin-top: 1; }
    GuardPanel.-empty #guard-plot { display: none; }
    """

    def compose(self):
        if PlotextPlot is not None:
            yield PlotextPlot(id="guard-plot")
        else:
            yield Static("(install the console extra for the guard's plot)", id="guard-plot")

    def on_mount(self) -> None:
        self.add_class("-empty")

    def show(self, check: GuardCheck | None) -> None:
        """Draw the check's running values (hidden while there are fewer than two points)."""
        points = check.trace if check is not None else []
        self.set_class(len(points) < 2, "-empty")
        if len(points) < 2 or PlotextPlot is None:
            return
        widget = self.query_one("#guard-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        served = [point.served_count for point in points]
        for role, color in (("prior", "blue"), ("promoted", "red" if check.verdict in ("regressed", "rolled_back")
                                                          else "green")):
            values = [getattr(point, role) for point in points]
            for bound in ("low", "high"):
                plt.plot(served, [getattr(value, bound) for value in values], color=color, marker="⋅")
            plt.plot(served, [value.estimate for value in values], color=color, marker="braille")
        active = "red" if check.verdict in ("regressed", "rolled_back") else "green"
        plt.title(f"value: active {active}, prior blue (bands {check.policy.level:.0%})")
        plt.xlabel("served trajectories")
        if check.policy.reward_low is not None and check.policy.reward_high is not None:
            plt.ylim(check.policy.reward_low, check.policy.reward_high)
        widget.refresh()


def announcement(guard: GuardStatus | None, reason: str | None) -> str | None:
    """The message announcing an automatic rollback, when the active version came from one."""
    if guard is None or not guard.last_guard_report_id or not (reason or "").startswith("guard:"):
        return None
    return (f"The guard rolled back automatically ({reason[len('guard:'):].strip()}); "
            f"see guard-reports/{guard.last_guard_report_id}.json")
