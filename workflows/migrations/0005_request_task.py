"""`RequestTask`: a proxy of viewflow's Task (no table), the flow's `task_class`."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('viewflow', '0015_task_scheduled'),
        ('workflows', '0004_case_red_at'),
    ]

    operations = [
        migrations.CreateModel(
            name='RequestTask',
            fields=[
            ],
            options={
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('viewflow.task',),
        ),
    ]
