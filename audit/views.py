"""Pages of the audit trail for platform administrators. Thin: the form reads the input, the
selectors read the trail, `record_access` records that someone's displays were looked at."""

import csv
import io
import re

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from audit import selectors
from audit.forms import AccessReportForm
from audit.services import record_access
from casework.pagination import page_links, without_position
from casework.spreadsheet import safe_cell as _cell

REPORT_PAGE_SIZE = 50


def _admins_only(request) -> None:
    """Deny by default: anyone but an active platform administrator gets the missing-page 404."""
    if not request.user.is_platform_admin:
        raise Http404


@require_GET
def access_report(request):
    """« Which companies did this user see between two dates »."""
    _admins_only(request)
    form = AccessReportForm(request.GET or None)
    context = {"form": form}
    if form.is_valid():
        data = form.cleaned_data
        report = selectors.companies_seen_page(
            data["user"], start=data["start"], end=data["end"], params=request.GET, size=REPORT_PAGE_SIZE
        )
        if report.page.invalid:
            messages.error(request, _("This page link is no longer valid: the first page is shown."))
        # Looking at someone's displays is itself a sensitive read: it is recorded, on that person.
        record_access(actor=request.user, instance=data["user"], what="consultations")
        query_string = without_position(request.GET)
        context.update(
            {
                "subject": data["user"],
                "start": data["start"],
                "end": data["end"],
                "companies": report.companies,
                "total": report.displays,
                "page": report.page,
                "links": page_links(report.page, query_string),
                "query_string": query_string,
            }
        )
    return render(request, "audit/access_report.html", context)


@require_GET
def access_report_csv(request):
    """The same report as a CSV file for a French spreadsheet (UTF-8 with BOM, « ; »)."""
    _admins_only(request)
    form = AccessReportForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/access_report.html", {"form": form})
    data = form.cleaned_data
    rows = selectors.companies_seen_by(data["user"], start=data["start"], end=data["end"])
    record_access(actor=request.user, instance=data["user"], what="consultations_csv")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", data["user"].username).strip("-.") or str(data["user"].pk)
    response["Content-Disposition"] = (
        f'attachment; filename="consultations_{name}_{data["start"]:%Y-%m-%d}_{data["end"]:%Y-%m-%d}.csv"'
    )
    text = io.StringIO()
    text.write("\ufeff")  # the BOM: Excel then reads UTF-8
    writer = csv.writer(text, delimiter=";")
    writer.writerow(
        [_("Company"), _("SIRET"), _("Pilot sites"), _("Displays"), _("First display"), _("Last display")]
    )
    zone = timezone.get_current_timezone()
    writer.writerows(
        [
            _cell(row.name if row.exists else _("Deleted company (no. %(id)s)") % {"id": row.company_id}),
            _cell(row.siret),
            _cell(", ".join(row.sites)),
            row.displays,
            _when(row.first, zone),
            _when(row.last, zone),
        ]
        for row in rows
    )
    response.write(text.getvalue())  # one write, not one per row
    return response


def _when(moment, zone=None) -> str:
    local = moment.astimezone(zone or timezone.get_current_timezone())
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"
