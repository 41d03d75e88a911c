"""Dispatching control plans to gateways over MQTT, a simulated gateway fleet, and the plans' execution state.

The loop a plan closes: ``ControlPlan.commands`` → :func:`dispatch_plan` (MQTT, QoS 1, acks, retries) →
:class:`GatewayFleet` (applies each command to the twin once) → :func:`apply_to_profiles` (loads and sgens lowered) →
an AC power flow confirms. :func:`dispatch_in_process` is the same without a broker; :class:`MosquittoBroker` runs a
private broker for tests and demos. Design notes: ``docs/design/dispatch.md``.
"""

from twin.dispatch.broker import BrokerAddress, BrokerUnavailableError, MosquittoBroker, parse_broker_url
from twin.dispatch.dispatch import dispatch_in_process, dispatch_plan
from twin.dispatch.gateways import GatewayFleet, apply_to_profiles, simulate_gateways
from twin.dispatch.messages import prepare_commands
from twin.dispatch.state import ExecutionReport, ExecutionState

__all__ = [
    "BrokerAddress",
    "BrokerUnavailableError",
    "ExecutionReport",
    "ExecutionState",
    "GatewayFleet",
    "MosquittoBroker",
    "apply_to_profiles",
    "dispatch_in_process",
    "dispatch_plan",
    "parse_broker_url",
    "prepare_commands",
    "simulate_gateways",
]
