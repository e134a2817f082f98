from django.urls import path

from notifications import views

urlpatterns = [
    path("notifications/", views.notification_list, name="notification_list"),
    path("notifications/lues/", views.notification_mark_read, name="notification_mark_read"),
    path("notifications/preferences/", views.notification_preferences, name="notification_preferences"),
]
