"""Unit conversion at the edges: stored metric, shown and typed in the clinic's units."""

LB_PER_KG = 2.2046226218


def c_to_f(celsius: float) -> float:
    return celsius * 9 / 5 + 32


def f_to_c(fahrenheit: float) -> float:
    return (fahrenheit - 32) * 5 / 9


def kg_to_lb(kg: float) -> float:
    return kg * LB_PER_KG


def lb_to_kg(lb: float) -> float:
    return lb / LB_PER_KG


def temperature_unit(system: str) -> str:
    return "°F" if system == "us" else "°C"


def weight_unit(system: str) -> str:
    return "lb" if system == "us" else "kg"


def temperature_to_display(celsius: float | None, system: str) -> float | None:
    if celsius is None:
        return None
    return round(c_to_f(celsius), 1) if system == "us" else round(celsius, 1)


def temperature_from_entry(value: float | None, system: str) -> float | None:
    if value is None:
        return None
    return f_to_c(value) if system == "us" else value


def weight_to_display(kg: float | None, system: str) -> float | None:
    if kg is None:
        return None
    return round(kg_to_lb(kg), 1) if system == "us" else round(kg, 1)


def weight_from_entry(value: float | None, system: str) -> float | None:
    if value is None:
        return None
    return lb_to_kg(value) if system == "us" else value


def format_temperature(celsius: float | None, system: str) -> str:
    value = temperature_to_display(celsius, system)
    return "" if value is None else f"{value:.1f} {temperature_unit(system)}"


def format_o2(flow_lpm: float | None) -> str:
    """Supplemental oxygen as charted: "Room air" (0), "2 L/min"; "" when not charted."""
    if flow_lpm is None:
        return ""
    return "Room air" if flow_lpm == 0 else f"{flow_lpm:g} L/min"


def format_weight(kg: float | None, system: str) -> str:
    value = weight_to_display(kg, system)
    return "" if value is None else f"{value:.1f} {weight_unit(system)}"
