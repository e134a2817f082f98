"""Django admin for the platform operator: reference data (geography, organisations, users and
roles, toolbox). Cases change state only through the services, so they are read-only here."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from casework import models


@admin.register(models.Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]


@admin.register(models.Territory)
class TerritoryAdmin(admin.ModelAdmin):
    list_display = ["name", "department"]
    list_filter = ["department"]
    search_fields = ["name"]


@admin.register(models.PilotSite)
class PilotSiteAdmin(admin.ModelAdmin):
    list_display = ["name", "department", "territory", "starts_on", "ends_on", "enrolment_cap"]
    list_select_related = ["department", "territory"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(models.Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "department", "is_active"]
    list_filter = ["kind", "department", "is_active"]
    search_fields = ["name", "siret"]
    filter_horizontal = ["territories"]


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["organisation"]


class SiteAnimatorInline(admin.TabularInline):
    model = models.SiteAnimator
    extra = 0


class TerritoryObserverInline(admin.TabularInline):
    model = models.TerritoryObserver
    extra = 0


@admin.register(models.User)
class UserAdmin(BaseUserAdmin):
    inlines = [MembershipInline, SiteAnimatorInline, TerritoryObserverInline]
    list_display = ["username", "first_name", "last_name", "email", "is_active", "is_superuser"]
    readonly_fields = ["accepted_charter_version", "last_login", "date_joined"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        (_("Confidentiality"), {"fields": ["accepted_charter_version"]}),
    ]


@admin.register(models.ToolboxService)
class ToolboxServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "provider", "response_time_days", "is_active"]
    list_filter = ["category", "is_active", "provider"]
    list_select_related = ["provider"]
    search_fields = ["name", "provider__name"]
    filter_horizontal = ["territories"]


class CompanyContactInline(admin.TabularInline):
    model = models.CompanyContact
    extra = 0


@admin.register(models.Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "siret", "naf_code", "commune", "territory"]
    list_select_related = ["territory"]
    search_fields = ["name", "siret"]
    list_filter = ["territory__department"]
    inlines = [CompanyContactInline]
    readonly_fields = ["public_id", "created_at", "created_by"]


@admin.register(models.Case)
class CaseAdmin(admin.ModelAdmin):
    """Read-only: transitions and referent changes go through the application and its rules."""

    list_display = ["company", "site", "state", "referent", "last_activity_at"]
    list_filter = ["site", "state"]
    list_select_related = ["company", "site", "referent"]
    search_fields = ["company__name", "company__siret"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
