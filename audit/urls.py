from django.urls import path

from audit import views

# Mounted under /administration/ (config/urls.py): platform administrators only, 404 for anyone else.
urlpatterns = [
    path("consultations/", views.access_report, name="audit_access_report"),
    path("consultations/export/", views.access_report_csv, name="audit_access_report_csv"),
]
