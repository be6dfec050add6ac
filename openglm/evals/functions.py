"""User functions the evals and the All Tools data offer a model: OpenAI function definitions, and a real,
deterministic implementation of each (the function's result the client sends back). Invented for OpenGLM; no
task here is copied from a public benchmark.

``split``: functions whose *calls* appear in training data (``train``) and those only ever called in held-out
tasks (``heldout``; they may still be offered as distractors in training); ``practice`` functions are offered
only by the All Tools training families (``alltools/choosing.py`` and the later lessons: ``carrying``,
``contrasting``, ``verbs``, ``inventing``), never by a held-out task or another suite."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UserFunction:
    name: str
    description: str
    parameters: dict[str, Any]
    split: str
    implementation: Callable[[dict[str, Any]], dict[str, Any]]

    def definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def call(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.implementation(arguments)


def _number(seed: str, low: int, high: int) -> int:
    """A stable pseudo-random number for ``seed`` (the same question gets the same answer)."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16)
    return low + digest % (high - low + 1)


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


STR = {"type": "string"}


def _weather(a: dict[str, Any]) -> dict[str, Any]:
    city = str(a.get("city", ""))
    celsius = _number("weather" + city.lower(), -5, 34)
    unit = a.get("unit", "celsius")
    value = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "temperature": value, "unit": unit, "sky": ["sunny", "cloudy", "rainy"][celsius % 3]}


def _currency(a: dict[str, Any]) -> dict[str, Any]:
    rate = _number(f"{a.get('from_currency')}{a.get('to_currency')}".upper(), 50, 950) / 100
    amount = float(a.get("amount", 0))
    return {"amount": amount, "converted": round(amount * rate, 2), "rate": rate, "to": a.get("to_currency")}


def _stock(a: dict[str, Any]) -> dict[str, Any]:
    symbol = str(a.get("symbol", "")).upper()
    return {"symbol": symbol, "price": _number("stock" + symbol, 1000, 90000) / 100, "currency": "USD"}


def _reminder(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "scheduled", "text": a.get("text"), "time": a.get("time"), "id": _number(str(a), 100, 999)}


def _email(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "sent", "to": a.get("to"), "message_id": f"m{_number(str(a), 1000, 9999)}"}


def _flights(a: dict[str, Any]) -> dict[str, Any]:
    price = _number(f"{a.get('origin')}{a.get('destination')}{a.get('date')}", 80, 900)
    return {"flights": [{"number": f"OG{price % 97 + 100}", "price": price, "departs": "09:40"}]}


def _table(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "booked", "restaurant": a.get("restaurant"), "time": a.get("time"), "people": a.get("people")}


def _translate(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "queued", "text": a.get("text"), "target_language": a.get("target_language")}


def _timezone(a: dict[str, Any]) -> dict[str, Any]:
    city = str(a.get("city", ""))
    offset = _number("tz" + city.lower(), -10, 12)
    return {"city": city, "utc_offset": f"{offset:+d}:00", "local_time": f"{(12 + offset) % 24:02d}:00"}


def _expense(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "logged", "id": f"x{_number(str(a), 1000, 9999)}", "category": a.get("category")}


def _meeting(a: dict[str, Any]) -> dict[str, Any]:
    start = 9 + _number(f"{a.get('title')}{a.get('date')}", 0, 7)
    return {"status": "scheduled", "title": a.get("title"), "date": a.get("date"), "starts": f"{start:02d}:00"}


def _package(a: dict[str, Any]) -> dict[str, Any]:
    number = str(a.get("tracking_number", ""))
    return {"tracking_number": number, "status": ["in transit", "delivered", "at the depot"][_number(number, 0, 2)]}


def _todo(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "added",
        "task": a.get("task"),
        "due_date": a.get("due_date", "none"),
        "id": _number(str(a), 1, 99),
    }


def _taxi(a: dict[str, Any]) -> dict[str, Any]:
    minutes = _number(f"{a.get('pickup')}{a.get('destination')}", 3, 15)
    return {"status": "on its way", "arrives_in_minutes": minutes, "car": f"taxi {_number(str(a), 100, 999)}"}


def _air_quality(a: dict[str, Any]) -> dict[str, Any]:
    aqi = _number("aqi" + str(a.get("city", "")).lower(), 8, 180)
    level = "good" if aqi <= 50 else "moderate" if aqi <= 100 else "unhealthy"
    return {"city": a.get("city"), "aqi": aqi, "level": level}


def _recipe(a: dict[str, Any]) -> dict[str, Any]:
    dish = str(a.get("dish", ""))
    minutes = min(int(a.get("max_minutes") or 90), _number("recipe" + dish.lower(), 15, 90))
    return {"recipe": f"Easy {dish}", "minutes": minutes, "servings": _number(dish, 2, 6)}


def _music(a: dict[str, Any]) -> dict[str, Any]:
    return {"status": "playing", "song": a.get("song"), "artist": a.get("artist", "unknown")}


FUNCTIONS: list[UserFunction] = [
    UserFunction(
        "get_weather",
        "Current weather for a city.",
        _obj({"city": STR, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city"]),
        "train",
        _weather,
    ),
    UserFunction(
        "convert_currency",
        "Convert an amount of money from one currency to another (ISO codes such as USD, EUR, CNY).",
        _obj(
            {"amount": {"type": "number"}, "from_currency": STR, "to_currency": STR},
            ["amount", "from_currency", "to_currency"],
        ),
        "train",
        _currency,
    ),
    UserFunction(
        "get_stock_price",
        "The latest price of a stock by its ticker symbol.",
        _obj({"symbol": STR}, ["symbol"]),
        "train",
        _stock,
    ),
    UserFunction(
        "set_reminder",
        "Remind the user of something at a time (HH:MM, 24-hour clock).",
        _obj({"text": STR, "time": STR}, ["text", "time"]),
        "train",
        _reminder,
    ),
    UserFunction(
        "send_email",
        "Send an email.",
        _obj({"to": STR, "subject": STR, "body": STR}, ["to", "subject", "body"]),
        "train",
        _email,
    ),
    UserFunction(
        "search_flights",
        "Find flights between two cities on a date (YYYY-MM-DD).",
        _obj({"origin": STR, "destination": STR, "date": STR}, ["origin", "destination", "date"]),
        "heldout",
        _flights,
    ),
    UserFunction(
        "book_table",
        "Book a table at a restaurant.",
        _obj({"restaurant": STR, "time": STR, "people": {"type": "integer"}}, ["restaurant", "time", "people"]),
        "heldout",
        _table,
    ),
    UserFunction(
        "get_local_time",
        "The local time and UTC offset of a city.",
        _obj({"city": STR}, ["city"]),
        "heldout",
        _timezone,
    ),
    UserFunction(
        "track_package",
        "Where a parcel is, by its tracking number.",
        _obj({"tracking_number": STR}, ["tracking_number"]),
        "train",
        _package,
    ),
    UserFunction(
        "translate_text",
        "Send a text to the translation service (the translation arrives later by email).",
        _obj({"text": STR, "target_language": STR}, ["text", "target_language"]),
        "train",
        _translate,
    ),
    UserFunction(
        "log_expense",
        "Record a business expense (date as YYYY-MM-DD).",
        _obj(
            {
                "amount": {"type": "number"},
                "category": {"type": "string", "enum": ["food", "travel", "office", "software", "other"]},
                "date": STR,
            },
            ["amount", "category", "date"],
        ),
        "train",
        _expense,
    ),
    UserFunction(
        "schedule_meeting",
        "Put a meeting on the user's calendar (date as YYYY-MM-DD).",
        _obj(
            {"title": STR, "date": STR, "duration_minutes": {"type": "integer"}}, ["title", "date", "duration_minutes"]
        ),
        "heldout",
        _meeting,
    ),
    UserFunction(
        "add_todo",
        "Add a task to the user's to-do list, with an optional due date (YYYY-MM-DD).",
        _obj({"task": STR, "due_date": STR}, ["task"]),
        "train",
        _todo,
    ),
    UserFunction(
        "call_taxi",
        "Order a taxi from a pickup place to a destination.",
        _obj({"pickup": STR, "destination": STR, "passengers": {"type": "integer"}}, ["pickup", "destination"]),
        "train",
        _taxi,
    ),
    UserFunction(
        "get_air_quality",
        "The air quality index (AQI) of a city now.",
        _obj({"city": STR}, ["city"]),
        "train",
        _air_quality,
    ),
    UserFunction(
        "find_recipe",
        "Find a recipe for a dish, optionally one ready within a number of minutes.",
        _obj({"dish": STR, "max_minutes": {"type": "integer"}}, ["dish"]),
        "train",
        _recipe,
    ),
    UserFunction(
        "play_music",
        "Play a song on the user's speaker, optionally by a given artist.",
        _obj({"song": STR, "artist": STR}, ["song"]),
        "train",
        _music,
    ),
]


# ---------------------------------------------------------------- practice functions (All Tools train families)
#
# A model trained on a dozen functions learns "a city → get_weather" instead of "the function whose name and
# description match the request". These invented functions are offered only by the practice families
# (``alltools/choosing.py``, generator version 4): many share an argument (a city, a room, a number) so the name,
# not the argument, must decide. They are kept out of ``FUNCTIONS``, so every other family's tasks and the
# function-calling suite are what they were; none does what a held-out function does (no flights, table
# bookings, local times or meetings).


def _measured(field: str, low: int, high: int, scale: float = 1.0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An implementation that reports ``field``: a stable number for the arguments, with the arguments echoed."""

    def implementation(a: dict[str, Any]) -> dict[str, Any]:
        value = _number(field + str(sorted(a.items())).lower(), low, high)
        return {
            **{k: v for k, v in a.items() if isinstance(v, str | int | float)},
            field: value if scale == 1 else round(value * scale, 2),
        }

    return implementation


def _done(status: str, field: str = "", low: int = 0, high: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An action's implementation: its status, the arguments, and an id or a number when ``field`` is named."""

    def implementation(a: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"status": status, **{k: v for k, v in a.items() if isinstance(v, str | int | float)}}
        if field:
            out[field] = _number(status + str(sorted(a.items())).lower(), low, high)
        return out

    return implementation


INT = {"type": "integer"}
NUM = {"type": "number"}
PRACTICE_FUNCTIONS: list[UserFunction] = [
    UserFunction(
        "get_humidity",
        "Relative humidity (percent) in a city now.",
        _obj({"city": STR}, ["city"]),
        "practice",
        _measured("humidity_percent", 15, 98),
    ),
    UserFunction(
        "get_uv_index",
        "Today's UV index of a city.",
        _obj({"city": STR}, ["city"]),
        "practice",
        _measured("uv_index", 1, 11),
    ),
    UserFunction(
        "get_pollen_count",
        "The pollen count of a city today (grains per cubic metre).",
        _obj({"city": STR}, ["city"]),
        "practice",
        _measured("pollen", 5, 240),
    ),
    UserFunction(
        "get_traffic",
        "Current traffic delay on a city's main roads, in minutes.",
        _obj({"city": STR}, ["city"]),
        "practice",
        _measured("delay_minutes", 0, 55),
    ),
    UserFunction(
        "get_sunrise",
        "Today's sunrise and sunset times (HH:MM) in a city.",
        _obj({"city": STR}, ["city"]),
        "practice",
        lambda a: {
            "city": a.get("city"),
            "sunrise": f"0{_number('rise' + str(a.get('city')).lower(), 5, 7)}:{_number(str(a), 10, 59)}",
            "sunset": f"{_number('set' + str(a.get('city')).lower(), 17, 21)}:{_number(str(a), 10, 59):02d}",
        },
    ),
    UserFunction(
        "find_parking",
        "Free parking spaces in a city's centre now.",
        _obj({"city": STR}, ["city"]),
        "practice",
        _measured("free_spaces", 0, 400),
    ),
    UserFunction(
        "get_fuel_price",
        "Today's fuel price per litre in a city.",
        _obj({"city": STR, "fuel": {"type": "string", "enum": ["petrol", "diesel"]}}, ["city", "fuel"]),
        "practice",
        _measured("price_per_litre", 120, 260, 0.01),
    ),
    UserFunction(
        "check_train",
        "Whether a train (by its number) is on time, and its delay in minutes.",
        _obj({"train_number": STR}, ["train_number"]),
        "practice",
        _measured("delay_minutes", 0, 40),
    ),
    UserFunction(
        "get_bus_arrival",
        "Minutes until the next bus at a stop.",
        _obj({"stop": STR}, ["stop"]),
        "practice",
        _measured("minutes", 1, 25),
    ),
    UserFunction(
        "get_calories",
        "Calories in one portion of a food.",
        _obj({"food": STR}, ["food"]),
        "practice",
        _measured("calories", 40, 900),
    ),
    UserFunction(
        "get_team_score",
        "The score of a sports team's latest game.",
        _obj({"team": STR}, ["team"]),
        "practice",
        lambda a: {
            "team": a.get("team"),
            "score": f"{_number('for' + str(a), 0, 5)}-{_number('against' + str(a), 0, 5)}",
        },
    ),
    UserFunction(
        "get_news",
        "The latest headline on a topic.",
        _obj({"topic": STR}, ["topic"]),
        "practice",
        lambda a: {
            "topic": a.get("topic"),
            "headline": f"{str(a.get('topic', '')).capitalize()} story #"
            f"{_number('news' + str(a), 100, 999)} tops the news",
        },
    ),
    UserFunction(
        "check_balance",
        "The balance of one of the user's bank accounts.",
        _obj({"account": {"type": "string", "enum": ["checking", "savings"]}}, ["account"]),
        "practice",
        _measured("balance", 1000, 900000, 0.01),
    ),
    UserFunction(
        "get_battery_level",
        "The battery level (percent) of one of the user's devices.",
        _obj({"device": STR}, ["device"]),
        "practice",
        _measured("battery_percent", 3, 100),
    ),
    UserFunction(
        "list_events",
        "Concerts, plays and other events in a city today.",
        _obj({"city": STR}, ["city"]),
        "practice",
        lambda a: {
            "city": a.get("city"),
            "events": [
                {
                    "name": f"{kind} {_number(kind + str(a), 2, 9)}",
                    "time": f"{_number('at' + kind + str(a), 17, 21)}:00",
                    "price": _number("price" + kind + str(a), 10, 90),
                }
                for kind in ("Jazz night", "Open-air theatre")
            ],
        },
    ),
    UserFunction(
        "turn_on_lights",
        "Switch on the lights in a room of the user's home.",
        _obj({"room": STR}, ["room"]),
        "practice",
        _done("on"),
    ),
    UserFunction(
        "set_thermostat",
        "Set a room's heating to a temperature in degrees Celsius.",
        _obj({"room": STR, "temperature": INT}, ["room", "temperature"]),
        "practice",
        _done("set"),
    ),
    UserFunction(
        "lock_door",
        "Lock a door of the user's home.",
        _obj({"door": STR}, ["door"]),
        "practice",
        _done("locked"),
    ),
    UserFunction(
        "water_garden",
        "Water a zone of the garden for a number of minutes.",
        _obj({"zone": STR, "minutes": INT}, ["zone", "minutes"]),
        "practice",
        _done("watering"),
    ),
    UserFunction(
        "order_pizza",
        "Order a pizza for delivery.",
        _obj({"size": {"type": "string", "enum": ["small", "medium", "large"]}, "topping": STR}, ["size", "topping"]),
        "practice",
        _done("ordered", "arrives_in_minutes", 20, 50),
    ),
    UserFunction(
        "send_sms",
        "Send a text message to a phone number.",
        _obj({"phone": STR, "message": STR}, ["phone", "message"]),
        "practice",
        _done("sent", "message_number", 1000, 9999),
    ),
    UserFunction(
        "pay_bill",
        "Pay a bill to a company.",
        _obj({"company": STR, "amount": NUM}, ["company", "amount"]),
        "practice",
        _done("paid", "receipt", 10000, 99999),
    ),
    UserFunction(
        "rent_bike",
        "Rent a bike at a station.",
        _obj({"station": STR}, ["station"]),
        "practice",
        _done("unlocked", "bike", 100, 999),
    ),
]
# Practice functions of generator version 6, called by their own family (``fn-practice-dated``) and kept out of
# the decoys v4's practice families draw, so those families' lessons stay the ones earlier adapters learnt.
LATER_PRACTICE_FUNCTIONS: list[UserFunction] = [
    UserFunction(
        "get_rain_forecast",
        "The chance of rain (percent) in a city on a day (YYYY-MM-DD).",
        _obj({"city": STR, "date": STR}, ["city", "date"]),
        "practice",
        _measured("rain_chance_percent", 0, 100),
    ),
]


def _invented(
    name: str, description: str, properties: dict[str, Any], implementation: Callable[[dict[str, Any]], dict[str, Any]]
) -> UserFunction:
    return UserFunction(name, description, _obj(properties, list(properties)), "practice", implementation)


DAY = {"type": "string", "description": "YYYY-MM-DD"}
# Invented functions of generator version 12 (``alltools/inventing.py``), one or a few lessons each: many names and
# descriptions the model has seen once or twice, rather than many lessons on the same few, so that choosing by what
# a function does is what the lessons have in common. Offered and called only by that family.
INVENTED_FUNCTIONS: list[UserFunction] = [
    _invented("get_wind_speed", "Wind speed in a city now, in km/h.", {"city": STR}, _measured("wind_kmh", 0, 90)),
    _invented(
        "get_air_pressure", "Air pressure in a city now, in hPa.", {"city": STR}, _measured("pressure_hpa", 960, 1045)
    ),
    _invented(
        "get_rent_price",
        "Average monthly rent of a one-bedroom flat in a city.",
        {"city": STR},
        _measured("monthly_rent", 400, 3200),
    ),
    _invented("get_ice_thickness", "Thickness of the ice on a lake, in cm.", {"lake": STR}, _measured("ice_cm", 0, 40)),
    _invented("get_snow_depth", "Snow depth at a ski resort, in cm.", {"resort": STR}, _measured("snow_cm", 0, 320)),
    _invented(
        "get_water_temperature",
        "Sea temperature at a beach, in degrees Celsius.",
        {"beach": STR},
        _measured("water_celsius", 8, 29),
    ),
    _invented(
        "get_noise_level", "Noise level on a street now, in decibels.", {"street": STR}, _measured("decibels", 35, 95)
    ),
    _invented(
        "get_bin_collection",
        "Days until the next rubbish collection on a street.",
        {"street": STR},
        _measured("days_until", 1, 6),
    ),
    _invented(
        "report_pothole",
        "Report a pothole on a street to the city council.",
        {"street": STR},
        _done("reported", "report_number", 1000, 9999),
    ),
    _invented(
        "get_book_rating",
        "Readers' average rating of a book, out of 5.",
        {"book": STR},
        _measured("stars", 10, 50, 0.1),
    ),
    _invented(
        "get_library_due",
        "Days until a book the user borrowed from the library must go back.",
        {"book": STR},
        _measured("days_left", 1, 21),
    ),
    _invented(
        "renew_loan", "Extend the user's library loan of a book.", {"book": STR}, _done("renewed", "weeks_added", 2, 4)
    ),
    _invented("get_film_score", "Critics' score of a film, from 0 to 100.", {"film": STR}, _measured("score", 12, 98)),
    _invented("get_song_length", "Length of a song in seconds.", {"song": STR}, _measured("seconds", 120, 420)),
    _invented("get_gym_occupancy", "How many people are at a gym now.", {"gym": STR}, _measured("people", 0, 120)),
    _invented(
        "get_bikes_available", "Bikes free to rent at a bike station now.", {"station": STR}, _measured("bikes", 0, 25)
    ),
    _invented("get_step_count", "Steps the user walked on a day.", {"date": DAY}, _measured("steps", 800, 19000)),
    _invented(
        "get_sleep_hours",
        "Hours the user slept the night before a day.",
        {"date": DAY},
        _measured("hours", 40, 95, 0.1),
    ),
    _invented(
        "get_heart_rate",
        "The user's resting heart rate on a day, from their watch (beats per minute).",
        {"date": DAY},
        _measured("bpm", 48, 90),
    ),
    _invented(
        "get_watering_interval",
        "How many days a kind of houseplant can go between waterings.",
        {"plant": STR},
        _measured("days", 2, 21),
    ),
    _invented(
        "get_vaccine_due",
        "Days until one of the user's pets is due a vaccination.",
        {"pet": STR},
        _measured("days", 3, 300),
    ),
    _invented(
        "feed_pet",
        "Drop a portion of food (grams) from a pet's automatic feeder.",
        {"pet": STR, "grams": INT},
        _done("fed"),
    ),
    _invented(
        "get_homework_due",
        "Days until the child's homework in a school subject is due.",
        {"school_subject": STR},
        _measured("days", 1, 10),
    ),
    _invented(
        "get_exam_grade",
        "The grade (0-100) of the user's latest exam in a school subject.",
        {"school_subject": STR},
        _measured("grade", 35, 100),
    ),
    _invented(
        "cancel_subscription",
        "Cancel one of the user's subscriptions.",
        {"service": STR},
        _done("cancelled", "refund", 2, 30),
    ),
    _invented(
        "get_subscription_cost",
        "Monthly price of one of the user's subscriptions, in dollars.",
        {"service": STR},
        _measured("monthly_price", 3, 30),
    ),
    _invented("add_to_shopping_list", "Add an item to the user's shopping list.", {"item": STR}, _done("added")),
    _invented("call_contact", "Start a phone call to one of the user's contacts.", {"contact": STR}, _done("calling")),
    _invented(
        "transfer_money",
        "Send money (dollars) to one of the user's contacts.",
        {"contact": STR, "amount": NUM},
        _done("sent", "transfer_id", 10000, 99999),
    ),
    _invented(
        "share_location",
        "Share the user's live location with a contact for some minutes.",
        {"contact": STR, "minutes": INT},
        _done("sharing"),
    ),
    _invented("block_number", "Block calls and texts from a phone number.", {"phone": STR}, _done("blocked")),
    _invented(
        "donate",
        "Give money (dollars) to a charity.",
        {"charity": STR, "amount": NUM},
        _done("donated", "receipt", 1000, 9999),
    ),
    _invented("open_window", "Open the window of a room in the user's home.", {"room": STR}, _done("open")),
    _invented("close_blinds", "Lower the blinds in a room of the user's home.", {"room": STR}, _done("closed")),
    _invented("start_vacuum", "Send the robot vacuum cleaner to clean a room.", {"room": STR}, _done("cleaning")),
    _invented(
        "preheat_oven", "Heat the oven to a temperature in degrees Celsius.", {"temperature": INT}, _done("heating")
    ),
    _invented(
        "start_dishwasher",
        "Start the dishwasher on one of its programmes.",
        {"programme": {"type": "string", "enum": ["eco", "quick", "intensive"]}},
        _done("running", "minutes", 30, 150),
    ),
    _invented(
        "mute_notifications", "Silence the phone's notifications for some minutes.", {"minutes": INT}, _done("muted")
    ),
    _invented("set_alarm", "Set a wake-up alarm (HH:MM).", {"time": STR}, _done("set")),
    _invented(
        "order_flowers",
        "Have a bouquet of flowers delivered to an address.",
        {"flowers": STR, "address": STR},
        _done("ordered", "arrives_in_hours", 2, 30),
    ),
    _invented(
        "get_parking_fee", "Hourly fee at a car park.", {"car_park": STR}, _measured("fee_per_hour", 50, 600, 0.01)
    ),
    _invented(
        "get_clinic_wait",
        "Waiting time at a doctor's clinic now, in minutes.",
        {"clinic": STR},
        _measured("minutes", 5, 120),
    ),
]
# Every function a task may offer or a client may run, by name.
BY_NAME = {
    function.name: function
    for function in [*FUNCTIONS, *PRACTICE_FUNCTIONS, *LATER_PRACTICE_FUNCTIONS, *INVENTED_FUNCTIONS]
}
