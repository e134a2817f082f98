from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = _("Service requests")

    def ready(self):
        from casework import retention, rules
        from workflows.retention import wipe_case
        from workflows.rules import case_visibility_for_providers

        rules.extend_case_visibility(case_visibility_for_providers)
        # The anonymisation of a closed case wipes the requests' free text too.
        retention.register_case_wiper(wipe_case)

        # The case timeline lists the requests' steps and the escalations.
        from casework import timeline
        from workflows.timeline import SOURCES

        for source in SOURCES:
            timeline.register_source(source)
