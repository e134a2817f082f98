from django.urls import path

from cockpit import calendar_views, report_views, views

urlpatterns = [
    path("pilotage/", views.board_region, name="board_region"),
    path("pilotage/<slug:slug>/", views.board, name="board"),
    path("pilotage/<slug:slug>/ordre-du-jour/", views.review_agenda, name="review_agenda"),
    path("pilotage/<slug:slug>/revue/", views.review_schedule, name="review_schedule"),
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
