"""``aigiqa mos``: MOS from raw ratings (or scores from paired comparisons), and the plan of
the next ratings where the MOS is least certain (:func:`aigiqa.subjective.plan_ratings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigiqa.errors import AigiqaError


def _range(text: str | None, option: str) -> tuple[float, float] | None:
    """Parse 'lo,hi' (e.g. '0,5') into a pair of floats."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise AigiqaError(f"{option} {text!r}: expected two numbers 'lo,hi', e.g. 0,5") from None
    return lo, hi


def mos(
    ratings: Annotated[Path, typer.Argument(help="CSV: subject, image, score[, session]")],
    out: Annotated[Path, typer.Option(help="MOS CSV (image, mos, std, se, ci95, n, sos)")],
    method: Annotated[str, typer.Option(help="zscore | mos | bias_removed | mle")] = "zscore",
    scale: Annotated[str | None, typer.Option(help="Rating scale 'lo,hi', e.g. 0,100")] = None,
    target_range: Annotated[
        str | None, typer.Option(help="Rescale MOS onto 'lo,hi', e.g. 0,5 for AIGIQA-20K")
    ] = None,
    screen: Annotated[
        bool | None, typer.Option("--screen/--no-screen", help="BT.500 subject screening")
    ] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report", help="Write the screening/subject report (JSON)")
    ] = None,
    pairs: Annotated[bool, typer.Option(
        "--pairs", help="RATINGS is a comparisons CSV (a, b, outcome a|b|tie[, group, "
        "annotator]): scale it (item, score, se, ci_low, ci_high, wins, losses, ties)")] = False,
    model: Annotated[str, typer.Option(help="--pairs: bt | thurstone")] = "bt",
    ties: Annotated[str, typer.Option(help="--pairs: rao-kupper | davidson | drop")] = "rao-kupper",
    alpha: Annotated[float, typer.Option(help="--pairs: ridge alpha·Σs² (0: pure MLE)")] = 0.0,
    plan_next: Annotated[int | None, typer.Option(
        "--plan-next", help="Plan N more ratings where the MOS is least certain (with --plan)")
    ] = None,
    plan: Annotated[Path | None, typer.Option(
        help="--plan-next: CSV image, n, std, ci95, extra, ci95_after (extra: ratings to add)")
    ] = None,
    plan_objective: Annotated[str, typer.Option(
        help="--plan-next: variance (total error) | widest (the widest CI first)")
    ] = "variance",
) -> None:
    """Compute MOS from raw ratings (z-scores, BT.500 screening, subject model, CI95), or with
    --pairs scale paired comparisons (Bradley-Terry / Thurstone). --plan-next N --plan FILE
    also plans the next N ratings (plan_ratings: where the MOS confidence intervals are widest
    or fall the most)."""
    import json
    import warnings

    from aigiqa.files import check_file, write_text
    from aigiqa.subjective import compute_mos, read_ratings
    from aigiqa.subjective.mle import DEGENERATE

    check_file(out, "the MOS CSV", "--out")
    if (plan_next is None) != (plan is None):
        raise AigiqaError("--plan-next N and --plan FILE go together (the plan of the next N "
                          "ratings is written to FILE)")
    if plan is not None:
        from aigiqa.subjective.adaptive_ratings import OBJECTIVES

        if plan_next < 0:
            raise AigiqaError(f"--plan-next {plan_next}: the number of ratings to plan must be "
                              ">= 0")
        if plan_objective not in OBJECTIVES:
            raise AigiqaError(f"--plan-objective {plan_objective!r} is unknown; use one of "
                              f"{', '.join(OBJECTIVES)}")
        check_file(plan, "the rating plan", "--plan")
    if pairs:
        if method != "zscore" or scale or target_range or screen is not None or report_json \
                or plan is not None:
            raise AigiqaError("--pairs takes --model, --ties and --alpha; --method, --scale, "
                              "--target-range, --screen, --report and --plan-next are for "
                              "ratings")
        from aigiqa.comparisons import read_comparisons
        from aigiqa.subjective import scale_pairs

        table = scale_pairs(read_comparisons(ratings), model, ties, alpha=alpha)
        write_text(out, table.to_csv(index=False), "the MOS CSV")
        typer.echo(f"{len(table)} items, {table.attrs['n_comparisons']} comparisons, {model} "
                   f"(ties: {ties}, tie parameter {table.attrs['tie_parameter']:.4g}) → {out}")
        return
    if report_json is not None:
        check_file(report_json, "the report", "--report")
    rating_scale = _range(scale, "--scale")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEGENERATE)  # printed below, as one line
        result = compute_mos(
            read_ratings(ratings, scale=rating_scale), method=method, scale=rating_scale,
            target_range=_range(target_range, "--target-range"), screen=screen,
        )
    result.to_csv(out)
    rep = result.report
    typer.echo(f"{rep['n_images']} images, {rep['n_subjects']} subjects, {rep['n_ratings']} "
               f"ratings; {len(result.rejected)} subject(s) rejected → {out}")
    for _, row in result.rejected.iterrows():
        typer.echo(f"rejected {row['subject']}: {row['reason']}")
    for text in result.warnings:
        typer.echo(f"warning: {text}", err=True)
    if report_json is not None:
        write_text(report_json, json.dumps(rep, indent=2, default=str), "the report")
    if plan is not None:
        from aigiqa.subjective import plan_ratings

        planned = plan_ratings(result.table, plan_next, objective=plan_objective)
        write_text(plan, planned.to_csv(index=False), "the rating plan")
        worst = planned["ci95"].max(), planned["ci95_after"].max()
        typer.echo(f"plan: {int(planned['extra'].sum())} more ratings over "
                   f"{int((planned['extra'] > 0).sum())} images ({plan_objective}); widest CI95 "
                   f"{worst[0]:.3g} → {worst[1]:.3g} → {plan}")
