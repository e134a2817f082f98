from django.utils.functional import SimpleLazyObject

from workflows import selectors


def tasks(request):
    """Counters of the header (my tasks, my organisation's queue), computed only if shown."""
    return {"task_counts": SimpleLazyObject(lambda: selectors.task_counts(request.user))}
