from django.urls import path

from cockpit import views

urlpatterns = [
    path("pilotage/", views.board_region, name="board_region"),
    path("pilotage/<slug:slug>/", views.board, name="board"),
]
