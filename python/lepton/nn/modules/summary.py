"""Module.summary()'s table: each module's own parameter count, from shapes alone (no forward pass)."""


def _trainable(params):
    flags = [p.requires_grad for p in params]
    if not flags:
        return "-"
    return "yes" if all(flags) else "partial" if any(flags) else "no"


def summary_table(root):
    """The table as text: name, type, own #params and trainable per module, then the totals.

    A parameter shared between modules is counted once, at its first appearance, so the
    column adds up to the total.
    """
    seen = set()
    rows = []
    for name, m in root.named_modules():
        own = [p for p in m.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append((name or "(root)", type(m).__name__, f"{sum(p.numel() for p in own):,}", _trainable(own)))
    params = list(root.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    header = ("Name", "Type", "Params", "Trainable")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]

    def line(r):
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3].ljust(widths[3])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows), rule,
                      f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {total - trainable:,}"])
