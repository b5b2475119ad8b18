"""lepton.utils: torch.utils's pieces (lepton.data is torch.utils.data)."""


def __getattr__(name):  # lepton.utils.data is lepton.data, loaded on first use
    if name == "data":
        import lepton.data

        return lepton.data
    raise AttributeError(f"module 'lepton.utils' has no attribute '{name}'")
