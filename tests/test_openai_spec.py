"""One parser for every OpenAI-compatible (or realtime) endpoint spec: policies and judges read the same
keys, an unknown key is one clear error naming the keys, the old judge spelling still works."""

import pytest

from evostreaming.eval.judges import make_judge
from evostreaming.eval.remote import check_remote_spec
from evostreaming.utils.openai_spec import SpecError, parse_spec


def test_policy_and_judge_read_the_same_keys(monkeypatch):
    monkeypatch.delenv("EVOSTREAMING_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = parse_spec("openai:http://h:8000/v1,model=m,api_key=k", flag="--policy")
    assert (spec.url, spec.model, spec.api_key) == ("http://h:8000/v1", "m", "k")
    assert spec.redacted == "openai:http://h:8000/v1,model=m"
    judge = make_judge("openai:http://h:8000/v1,model=m,api_key=k")
    assert (judge.model, judge.client.api_key) == ("m", "k")
    monkeypatch.setenv("EVOSTREAMING_API_KEY", "from-env")
    assert make_judge("openai:http://h:8000/v1,model=m").client.api_key == "from-env"


@pytest.mark.parametrize("where", ["policy", "judge"])
def test_an_unknown_key_is_one_clear_error(where):
    spec = "openai:http://h:8000/v1,model=m,temprature=0"
    with pytest.raises(ValueError, match="unknown option 'temprature'; the options are model, api_key"):
        check_remote_spec(spec) if where == "policy" else make_judge(spec)
    with pytest.raises(SpecError, match="add ',model=NAME'"):
        parse_spec("openai:http://h:8000/v1", flag="--judge", need_model=True)


def test_the_judges_old_key_spelling_still_works_with_a_deprecation_message(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "secret")
    with pytest.warns(FutureWarning, match="key=MY_JUDGE_KEY.*deprecated.*api_key"):
        judge = make_judge("openai:http://h:8000/v1,model=m,key=MY_JUDGE_KEY")
    assert judge.client.api_key == "secret"
