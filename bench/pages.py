"""Page benchmark (`make bench`, key "pages"): the pages people open every day, at 75, 10,000 and
100,000 cases on PostgreSQL, each through Django in-process (the test client, signed in as an
animator, a platform administrator or a referent; middlewares, selectors, templates).

At each size, for each page, in the same run:
- `p50_ms`, `p95_ms` over SAMPLES requests (after 3 of warm-up);
- `queries`: the SQL queries of one request (the same at every size: the target).

Pages: the weekly review agenda of a site (its animator, an administrator), the case list (first
and last page), the case search by company name and by SIRET, the CLEFOP report, « Qui a vu
quoi » (an animator's displays over 30 days) and its CSV export, a case page with a long history
(its referent) and the page of its older events that the case page links to, the regional board
(an administrator).

The world, built once per size and added to from one size to the next (`seed_demo --companies N`:
bulk insertion beyond the curated cases), plus:
- one access entry per case (its referent displayed it, some time in the last 120 days) and the
  audited animator's displays of one case in ten of their site over the last 30 days, written in
  bulk into the access chain with their real positions and hashes (the chain stays verifiable);
- one case with a long history (comments, need edits through the services, request steps).

`--keep` keeps the bench database of an earlier run (no flush; a size already built is not built
again): a 100,000-case world is built once and reused while iterating on the code.

    python -m bench.pages [--sizes 75,10000,100000] [--samples 20] [--keep] [--pages agenda_animator,...]
"""

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bench.board import timed
from bench.notify import RESULTS, percentile, service_arguments, start_django
from bench.write_path import git_commit, machine

TARGET_P95_MS = 300.0
# The two pages opened most often: the board and a case.
TARGET_FAST_P95_MS = 150.0
FAST_PAGES = ("board", "case_page", "case_history")
HISTORY_MARK = "Banc d'essai : historique long"
HISTORY_COMMENTS = 150
HISTORY_NEED_EDITS = 60
HISTORY_REQUEST_STEPS = 120
REPORT_DAYS = 30


# --- The world ------------------------------------------------------------------------------------


def people():
    """(animator, admin, referent of the long-history case, the audited animator, its site)."""
    from casework.models import PilotSite, User
    from casework.services import charter_accept

    site = PilotSite.objects.get(slug="ancenis")
    animator = User.objects.get(username="cdet.ancenis@demo.territoires.fr")
    admin = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    case = history_case()
    for user in (animator, admin, case.referent):
        if not user.has_accepted_current_charter:
            charter_accept(actor=user)
    return animator, admin, case.referent, animator, site


def history_case():
    """The case whose history is long: an active curated case of Ancenis with a request."""
    from casework.models import Case

    marked = Case.objects.filter(comments__body__startswith=HISTORY_MARK).first()
    if marked is not None:
        return marked
    return (
        Case.objects.filter(site__slug="ancenis", state="active", requests__isnull=False)
        .order_by("pk")
        .first()
    )


def build_history(case):
    """Comments and need edits through the services (genuine audit entries), request steps in bulk."""
    from casework import services
    from casework.models import Need
    from workflows.models import EventKind, RequestEvent

    referent = case.referent
    for number in range(HISTORY_COMMENTS):
        services.comment_add(
            actor=referent, case=case, body=f"{HISTORY_MARK} — point {number + 1} : relance de l'entreprise."
        )
    need = case.needs.order_by("pk").first() or Need.objects.create(
        case=case, category="recruitment", description="Recrutement", created_by=referent
    )
    for number in range(HISTORY_NEED_EDITS):
        services.need_update(actor=referent, need=need, quantity=1 + number % 9)
    request = case.requests.order_by("pk").first()
    kinds = (EventKind.CLAIMED, EventKind.RELEASED)
    RequestEvent.objects.bulk_create(
        RequestEvent(request=request, kind=kinds[number % 2], actor=referent, organisation=request.provider)
        for number in range(HISTORY_REQUEST_STEPS)
    )


def bulk_access_entries(rows):
    """Write access entries in bulk at the end of the access chain, each sealed as `chain.seal`
    would: `rows` are (content type id, object id, repr, actor, page, timestamp)."""
    from django.db import transaction

    from audit import chain
    from audit.models import AuditEntry

    with transaction.atomic():
        chain._lock("access")
        head = chain._head(AuditEntry._meta.db_table, "access")
        seq, prev = (head[0], head[1]) if head else (0, chain.GENESIS)
        entries = []
        for content_type_id, object_id, name, actor, page, moment in rows:
            seq += 1
            entry = AuditEntry(
                content_type_id=content_type_id,
                object_pk=str(object_id),
                object_id=object_id,
                object_repr=name,
                action=AuditEntry.Action.ACCESS,
                actor=actor,
                actor_email=actor.email or None,
                additional_data={"page": page},
                timestamp=moment,
                chain="access",
                seq=seq,
                prev_hash=prev,
            )
            entry.content_digest = chain.content_digest(entry)
            entry.entry_hash = chain.entry_hash(prev, entry)
            prev = entry.entry_hash
            entries.append(entry)
        AuditEntry.objects.bulk_create(entries, batch_size=2000)
    return len(entries)


def build_accesses(audited, site, now):
    """One display per case not yet covered, by its referent; the audited animator's displays of
    one case in ten of their site (some twice) over the last REPORT_DAYS days."""
    from django.contrib.contenttypes.models import ContentType

    from audit.models import AuditEntry
    from casework.models import Case, User

    case_type = ContentType.objects.get_for_model(Case)
    covered = (
        AuditEntry.objects.filter(content_type=case_type, action=AuditEntry.Action.ACCESS)
        .order_by("-object_id")
        .values_list("object_id", flat=True)
        .first()
        or 0
    )
    users = {}
    rows = []
    for pk, company, referent_id, site_id in (
        Case.objects.filter(pk__gt=covered)
        .order_by("pk")
        .values_list("pk", "company__name", "referent_id", "site_id")
        .iterator(chunk_size=5000)
    ):
        referent = users.get(referent_id) or users.setdefault(referent_id, User.objects.get(pk=referent_id))
        moment = now - timedelta(minutes=pk * 7 % 172800)  # within 120 days
        rows.append((case_type.pk, pk, company, referent, "case_detail", moment))
        if site_id == site.pk and pk * 2654435761 % 2**32 % 10 == 0:  # one case in ten, spread
            for repeat in range(1 + pk % 2):
                moment = now - timedelta(minutes=(pk * 13 + repeat * 600) % (REPORT_DAYS * 1440 - 60))
                rows.append((case_type.pk, pk, company, audited, "case_detail", moment))
    return bulk_access_entries(rows) if rows else 0


def build(size):
    """The world at `size` cases (added to what is there): (seconds it took, the people)."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from casework.models import Case

    start = time.perf_counter()
    if Case.objects.count() < size:
        call_command("seed_demo", companies=size, verbosity=0)
    found = people()
    case = history_case()
    if not case.comments.filter(body__startswith=HISTORY_MARK).exists():
        build_history(case)
    written = build_accesses(found[3], found[4], timezone.now())
    with connection.cursor() as cursor:
        # The steady state of a live database, which autovacuum maintains.
        cursor.execute("VACUUM ANALYZE")
    seconds = time.perf_counter() - start
    print(f"pages: {size} cases ready in {seconds:.0f} s ({written} access entries added)", flush=True)
    return seconds, found


# --- The pages ------------------------------------------------------------------------------------


def last_page_url(client, url):
    """The case list's last page, as its own pagination links it (keyset: « Dernière page »; or,
    before, page numbers: ?page=N)."""
    html = client.get(url).content.decode()
    found = re.search(r'class="fr-pagination__link fr-pagination__link--last[^"]*" href="([^"]+)"', html)
    if found:
        return url + found.group(1).replace("&amp;", "&")
    pages = re.search(r"Page 1 (?:of|sur) ([\d\u202f\xa0 ]+)", html)
    number = re.sub(r"\D", "", pages.group(1)) if pages else "1"
    return f"{url}?page={number}"


def older_history_url(client, url):
    """The case's history page that the case page's « Voir les événements plus anciens » opens; None
    before the history paginated."""
    html = client.get(url).content.decode()
    found = re.search(r'href="([^"]+)" rel="next" data-older-events', html)
    return found.group(1).replace("&amp;", "&") if found else None


def page_list(animator, admin, referent, audited, site):
    """(name, user, url) of each page measured."""
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from casework.models import Case

    today = timezone.localdate()
    case = history_case()
    # A company searched as people type it: the last word of its name (beyond the curated cases, a
    # surname shared by one company in 40), or its SIREN. The newest case of the site: it exists at
    # every size.
    name, siret = (
        Case.objects.filter(site=site).order_by("-pk").values_list("company__name", "company__siret").first()
    )
    report = f"user={audited.username}&start={today - timedelta(days=REPORT_DAYS)}&end={today}"
    cases = reverse("case_list")
    admin_client = Client()
    admin_client.force_login(admin)
    referent_client = Client()
    referent_client.force_login(referent)
    case_url = reverse("case_detail", kwargs={"public_id": case.public_id})
    older = older_history_url(referent_client, case_url)
    return [
        ("agenda_animator", animator, reverse("review_agenda", kwargs={"slug": site.slug})),
        ("agenda_admin", admin, reverse("review_agenda", kwargs={"slug": site.slug})),
        ("case_list_first", admin, cases),
        ("case_list_last", admin, last_page_url(admin_client, cases)),
        ("search_name", admin, f"{cases}?q={quote(name.split()[-1])}"),
        ("search_siret", admin, f"{cases}?q={siret[:9]}"),
        ("clefop", admin, reverse("clefop_report")),
        ("access_report", admin, f"{reverse('audit_access_report')}?{report}"),
        ("access_report_csv", admin, f"{reverse('audit_access_report_csv')}?{report}"),
        ("case_page", referent, case_url),
        *([("case_history", referent, older)] if older else []),
        ("board", admin, reverse("board_region")),
    ]


def measure(pages, samples, only):
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    figures = {}
    clients = {}
    for name, user, url in pages:
        if only and name not in only:
            continue
        client = clients.get(user.pk)
        if client is None:
            client = clients[user.pk] = Client()
            client.force_login(user)

        def get(client=client, url=url):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        timed(get, 3)  # warm-up: plans, caches, session
        with CaptureQueriesContext(connection) as queries:
            size = len(get().content)
        query_count = len(queries)
        reset_queries()
        durations = timed(get, samples)
        figures[name] = {
            "p50_ms": percentile(durations, 0.50),
            "p95_ms": percentile(durations, 0.95),
            "queries": query_count,
            "bytes": size,
            "url": url,
        }
        print(f"  {name}: {json.dumps(figures[name], ensure_ascii=False)}", flush=True)
    return figures


def target_of(name) -> float:
    return TARGET_FAST_P95_MS if name in FAST_PAGES else TARGET_P95_MS


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="75,10000,100000")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="reuse the bench database of an earlier run")
    parser.add_argument("--pages", default="", help="comma-separated pages (all by default)")
    parser.add_argument("--no-save", action="store_true", help="print only, do not write latest.json")
    service_arguments(parser)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    only = {name for name in args.pages.split(",") if name}

    start_django(args)
    from django.core.management import call_command
    from django.db import connection

    from casework.models import Case

    name = connection.settings_dict["NAME"]
    if "bench" not in str(name):
        sys.exit(f"Refusing to empty database {name!r}: its name must contain 'bench'.")
    call_command("migrate", verbosity=0)
    if not args.keep:
        call_command("flush", interactive=False, verbosity=0)
    figures = {}
    for size in sizes:
        existing = Case.objects.count()
        if existing > size * 1.05 + 100:
            sys.exit(f"The bench database holds {existing} cases, more than {size}: run without --keep.")
        built, (animator, admin, referent, audited, site) = build(size)
        print(f"pages {size}:", flush=True)
        pages = page_list(animator, admin, referent, audited, site)
        figures[str(size)] = {
            "cases": Case.objects.count(),
            "build_s": round(built, 1),
            "pages": measure(pages, args.samples, only),
        }

    figures["context"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "database": connection.vendor,
        "samples": args.samples,
        "client": "django.test.Client in the bench process (no HTTP server)",
        **machine(),
        "targets": {
            "p95_ms": TARGET_P95_MS,
            "fast_p95_ms": TARGET_FAST_P95_MS,
            "fast_pages": list(FAST_PAGES),
        },
    }
    missed = missed_targets(figures, sizes)
    if not args.no_save and not only:
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["pages"] = figures
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print("pages: " + ("targets met" if not missed else "TARGETS MISSED: " + "; ".join(missed)), flush=True)
    return 1 if missed else 0


def missed_targets(figures, sizes) -> list[str]:
    largest = figures[str(sizes[-1])]["pages"]
    missed = []
    for name, page in largest.items():
        if page["p95_ms"] > target_of(name):
            missed.append(f"{name} p95 {page['p95_ms']} ms > {target_of(name):g} ms")
        counts = {figures[str(size)]["pages"].get(name, {}).get("queries") for size in sizes}
        if len(counts) != 1:
            missed.append(f"{name}: query counts differ across sizes {sorted(counts, key=str)}")
    return missed


if __name__ == "__main__":
    sys.exit(main())
