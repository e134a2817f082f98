"""Who may see which boards and reports of the cockpit. The animators (CDET, DTOE) of a pilot site see
its board and its CLEFOP report; platform administrators every site; observers (CLEFOP members) the
reports of the sites of the territories they observe, and nothing else. Referents and partner
agents see neither."""

from django.db.models import Q

from casework.rules import NOTHING, Roles, user_roles


def _sites_q(user, allowed) -> Q:
    """Nothing for anonymous, inactive or charter-less users; every site for platform
    administrators; else `allowed(roles)`."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    if not user.has_accepted_current_charter:
        return NOTHING
    if user.is_platform_admin:
        return Q()
    return allowed(user_roles(user))


def _animated(roles: Roles) -> Q:
    return Q(pk__in=roles.animated_site_ids) if roles.animated_site_ids else NOTHING


def _reported(roles: Roles) -> Q:
    allowed = _animated(roles)
    if roles.observed_territory_ids:
        allowed |= Q(territory_id__in=roles.observed_territory_ids)
    return allowed


def board_sites_q(user) -> Q:
    """The pilot sites whose board the user may open (a Q over PilotSite)."""
    return _sites_q(user, _animated)


def report_sites_q(user) -> Q:
    """The pilot sites whose CLEFOP report the user may read (a Q over PilotSite)."""
    return _sites_q(user, _reported)
