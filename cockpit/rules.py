"""Who may see which status boards: the animators (CDET, DTOE) of a pilot site see its board, and
platform administrators every board. Referents, partner agents and observers see none (observers
get the CLEFOP report only)."""

from django.db.models import Q

from casework.rules import NOTHING, user_roles


def board_sites_q(user) -> Q:
    """The pilot sites whose board the user may open (a Q over PilotSite)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    if not user.has_accepted_current_charter:
        return NOTHING
    if user.is_platform_admin:
        return Q()
    sites = user_roles(user).animated_site_ids
    return Q(pk__in=sites) if sites else NOTHING
