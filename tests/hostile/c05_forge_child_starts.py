# expect-error: SandboxBadOutput
# class 5: an answer that asks the operator to start children it must not (another
# namespace's definition by path, 2,000 at once, params beyond the cap) is refused whole
import sys


async def run(event, step, env):
    wire = sys.modules["tenantflow.engine.wire"]
    forged = [
        {"step": "a", "name": "kube-system", "definition": "../../kube-system/evil"},
        {"step": "b", "name": "x", "definition": "ok", "params": {"p": "x" * 400_000}},
        *({"step": f"s{i}", "name": f"n{i}", "definition": "ok"} for i in range(2000)),
    ]
    wire.outcome_to_wire = lambda outcome: {
        "kind": "Waiting",
        "wakeAt": None,
        "eventTypes": [],
        "waitingFor": {"kind": "child", "step": "a"},
        "children": forged,
    }
    return "forged"
