from django.urls import path

from cockpit import calendar_views, report_views, review_views, views

urlpatterns = [
    path("pilotage/", views.board_region, name="board_region"),
    path("pilotage/<slug:slug>/", views.board, name="board"),
    path("pilotage/<slug:slug>/ordre-du-jour/", views.review_agenda, name="review_agenda"),
    path("pilotage/<slug:slug>/revue/", views.review_schedule, name="review_schedule"),
]

# The weekly review meeting (cockpit.review_views).
urlpatterns += [
    path("pilotage/<slug:slug>/revues/", review_views.review_list, name="review_list"),
    path("pilotage/<slug:slug>/revues/ouvrir/", review_views.review_open, name="review_open"),
    path("pilotage/<slug:slug>/revues/<int:pk>/", review_views.review_detail, name="review_detail"),
    path(
        "pilotage/<slug:slug>/revues/<int:pk>/points/<int:item>/",
        review_views.review_entry_add,
        name="review_entry_add",
    ),
    path("pilotage/<slug:slug>/revues/<int:pk>/cloture/", review_views.review_close, name="review_close"),
    path("revues/actions/<int:pk>/fait/", review_views.action_done, name="action_done"),
]

# The CLEFOP report (cockpit.report_views): outside « pilotage/ », so that no site's short name hides
# it and the status board's menu link (current under « pilotage/ ») is not marked current here.
urlpatterns += [
    path("rapport-clefop/", report_views.report_page, name="clefop_report"),
    path("rapport-clefop.xlsx", report_views.report_xlsx, name="clefop_report_xlsx"),
    path("rapport-clefop.csv", report_views.report_csv, name="clefop_report_csv"),
]

# The personal calendar feed (cockpit.calendar_views): the page of its secret link, and the feed that
# calendar clients fetch without a session.
urlpatterns += [
    path("agenda/", calendar_views.calendar_settings, name="calendar_settings"),
    path("agenda/<str:token>.ics", calendar_views.calendar_feed, name="calendar_feed"),
]
