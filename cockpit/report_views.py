"""The CLEFOP report: the page (printable) and its XLSX and CSV exports. Thin views over
cockpit.report; whoever may read no site's report gets the missing-page 404."""

from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from casework.selectors import SMALL_COUNT
from cockpit import charts, report_exports
from cockpit.report import clefop_report, report_sites
from cockpit.report_forms import ReportForm


def _read(request):
    """The form (bound to the query, or to the default period) and the report when it is valid."""
    sites = report_sites(request.user)
    if not sites:
        raise Http404
    form = ReportForm(request.GET if request.GET else ReportForm.defaults(), sites=sites)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    chosen = [data["site"]] if data["site"] else sites
    report = clefop_report(request.user, chosen, data["start"], data["end"], all_sites=data["site"] is None)
    return form, report


def _query(form) -> str:
    data = form.cleaned_data
    return urlencode(
        {
            "site": data["site"].slug if data["site"] else "",
            "start": data["start"].isoformat(),
            "end": data["end"].isoformat(),
        }
    )


@require_GET
def report_page(request):
    form, report = _read(request)
    context = {"form": form, "report": report, "small_count": SMALL_COUNT}
    if report is not None:
        context.update(
            {
                "query": _query(form),
                "sites_label": report_exports.sites_label(report),
                "period_label": report_exports.period_label(report.start, report.end),
                "previous_label": report_exports.period_label(report.previous_start, report.previous_end),
                "category_chart": charts.horizontal_bars(
                    report.requests_by_category,
                    ident="chart-categories",
                    title=_("Requests opened by toolbox category"),
                    desc=_(
                        "Horizontal bars: for each category, the requests opened in the period "
                        "(blue) and in the previous period (grey). The same figures are in the table below."
                    ),
                ),
                "delay_chart": charts.histogram(
                    report.delay_distribution,
                    ident="chart-delays",
                    title=_("Distribution of the time to accept"),
                    desc=_(
                        "Columns: number of requests accepted within each range of business days, in the "
                        "period (blue) and in the previous period (grey). The same figures are in the table "
                        "below."
                    ),
                ),
            }
        )
    return render(request, "cockpit/report.html", context)


def _filename(form, extension: str) -> str:
    data = form.cleaned_data
    where = data["site"].slug if data["site"] else "sites"
    return f"rapport-clefop_{where}_{data['start']:%Y-%m-%d}_{data['end']:%Y-%m-%d}.{extension}"


@require_GET
def report_xlsx(request):
    form, report = _read(request)
    if report is None:
        return render(request, "cockpit/report.html", {"form": form, "report": None})
    response = HttpResponse(report_exports.to_xlsx(report), content_type=report_exports.XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{_filename(form, "xlsx")}"'
    return response


@require_GET
def report_csv(request):
    form, report = _read(request)
    if report is None:
        return render(request, "cockpit/report.html", {"form": form, "report": None})
    response = HttpResponse(report_exports.to_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(form, "csv")}"'
    return response
