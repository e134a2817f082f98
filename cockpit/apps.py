from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CockpitConfig(AppConfig):
    name = "cockpit"
    verbose_name = _("Animators' cockpit")

    def ready(self):
        from casework import retention
        from cockpit import review
        from cockpit.retention import wipe_case
        from workflows import selectors

        # « My tasks » lists the user's open action items of the weekly reviews.
        selectors.register_waiting_source("actions", review.open_actions_of)
        # The anonymisation of a closed case wipes what the weekly reviews wrote about it.
        retention.register_case_wiper(wipe_case)
