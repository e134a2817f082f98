from django.urls import path

from workflows import views

urlpatterns = [
    path("dossiers/<uuid:public_id>/demandes/nouvelle/", views.request_open, name="request_open"),
    path("demandes/<uuid:public_id>/", views.request_detail, name="request_detail"),
    path("demandes/<uuid:public_id>/action/<slug:name>/", views.request_action, name="request_action"),
    path("dossiers/<uuid:public_id>/escalade/", views.escalation_raise, name="escalation_raise"),
    path("dossiers/<uuid:public_id>/escalade/decision/", views.escalation_decide, name="escalation_decide"),
    path("taches/", views.task_list, name="task_list"),
]
