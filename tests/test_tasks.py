import metaworld.env_dict
from metaworld.policies import ENV_POLICY_MAP

from promptlam.tasks import ALL_V3, MT10


def test_task_lists_match_installed_metaworld():
    assert set(ALL_V3) == set(metaworld.env_dict.ALL_V3_ENVIRONMENTS)
    assert MT10 == tuple(metaworld.env_dict.MT10_V3)


def test_every_task_has_a_scripted_expert():
    assert set(ALL_V3) <= set(ENV_POLICY_MAP)
