"""Judges J(response, gold) for RealStreamEval, by name: rule (default), embedding, openai:URL,model=NAME."""

from evostreaming.eval.judges.base import JUDGES, Judge, make_judge
from evostreaming.eval.judges.rule import RuleJudge, normalize

__all__ = ["JUDGES", "Judge", "RuleJudge", "make_judge", "normalize"]
