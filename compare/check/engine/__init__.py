"""Checking a home-made autograd engine against torch: ``suite`` (the cases, each written once for torch
and for the engine), ``catalog`` (the classic engine mistakes, as data), ``runner`` (``check_engine``),
``model`` (an engine-written network as ``check_model``'s function)."""

from compare.check.engine.catalog import CATALOG, EngineBug
from compare.check.engine.model import engine_model
from compare.check.engine.runner import EngineReport, Protocol, check_engine

__all__ = ["CATALOG", "EngineBug", "EngineReport", "Protocol", "check_engine", "engine_model"]
