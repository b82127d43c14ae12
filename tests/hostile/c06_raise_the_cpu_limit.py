# expect-output-without: ESCAPED
# class 6: the advance's CPU limit is there, soft = hard, and cannot be raised or lifted
# (a soft limit below the hard one could be raised back; an unlimited one bounds nothing
# past the zygote's kill at the deadline)
import resource


async def run(event, step):
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    found = []
    if hard == resource.RLIM_INFINITY or soft != hard:
        found.append(f"ESCAPED: RLIMIT_CPU is ({soft}, {hard})")
    for wanted in ((hard + 60, hard + 60), (resource.RLIM_INFINITY, resource.RLIM_INFINITY)):
        try:
            resource.setrlimit(resource.RLIMIT_CPU, wanted)
            found.append(f"ESCAPED: RLIMIT_CPU raised to {wanted}")
        except (ValueError, OSError):
            pass
    return found or f"held at {hard} s"
