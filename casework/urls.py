from django.urls import path

from casework import views

urlpatterns = [
    path("", views.home, name="home"),
    path("charte/", views.charter, name="charter"),
    path("dossiers/", views.case_list, name="case_list"),
    path("dossiers/nouveau/", views.case_propose, name="case_propose"),
    path("dossiers/<uuid:public_id>/", views.case_detail, name="case_detail"),
    path("dossiers/<uuid:public_id>/historique/", views.case_history, name="case_history"),
    path("dossiers/<uuid:public_id>/consentement/", views.case_consent, name="case_consent"),
    path(
        "dossiers/<uuid:public_id>/action/<slug:name>/",
        views.case_transition,
        name="case_transition",
    ),
    path("dossiers/<uuid:public_id>/besoins/nouveau/", views.need_create, name="need_create"),
    path("dossiers/<uuid:public_id>/commentaires/", views.comment_add, name="comment_add"),
    path("dossiers/<uuid:public_id>/besoins/<int:need_id>/", views.need_edit, name="need_edit"),
    path("dossiers/<uuid:public_id>/passation/", views.handover_propose, name="handover_propose"),
    path(
        "dossiers/<uuid:public_id>/passation/<slug:action>/",
        views.handover_answer,
        name="handover_answer",
    ),
    path("entreprises/<uuid:public_id>/", views.company_detail, name="company_detail"),
    path("boite-a-outils/", views.toolbox, name="toolbox"),
]
