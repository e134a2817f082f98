from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = _("Service requests")

    def ready(self):
        from casework import rules
        from workflows.rules import case_visibility_for_providers

        rules.extend_case_visibility(case_visibility_for_providers)
