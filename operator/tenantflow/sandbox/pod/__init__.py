"""What runs inside a tenant's sandbox pod: the runner (the key, the operator's MAC, the
tenant's history) and, behind it, the zygote and one worker child per advance (tenant
code, seccomp). It and `sandbox.client` never import each other (.importlinter)."""
