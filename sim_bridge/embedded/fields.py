"""Column indices of the packed tables the compiled kernels read.

State and map live in a few field-major arrays (``table[FIELD, b, i]``) rather than dozens of
separate ones: compiled kernels then take a handful of arguments, which keeps numba's compile
time and call overhead small. Python code reads them through named views (``state.x``).
"""

from __future__ import annotations

# ---------------------------------------------------------------- actor floats F [NF, B, N]
X, Y, YAW, SPEED, LENGTH, WIDTH = 0, 1, 2, 3, 4, 5
STEER = 6  # wheel angle [rad]
ACCEL = 7  # applied acceleration [m/s²]
ACCEL_CMD = 8  # [m/s²]
STEER_CMD = 9  # [rad]
WHEELBASE = 10  # [m]
S = 11  # arc length on the current lane (vehicles, pedestrians) [m]
LAT0 = 12  # lateral offset at the start of a lane change [m]
LC_ELAPSED = 13  # [s]
LC_DURATION = 14  # [s]
CRUISE = 15  # cruise speed [m/s]; <= 0: lane limit × SPEED_FACTOR
SPEED_FACTOR = 16
LAT_BIAS = 17  # constant offset left of the lane centre [m]
TRIG_DIST = 18  # behaviour trigger distance [m]
TRIG_TIME = 19  # behaviour trigger time [s]
BEH_DECEL = 20  # [m/s²]
BEH_DIR = 21  # +1 left / -1 right
BEH_TIME = 22  # lane-change duration of a cut-in [s]
P_DIR = 23  # pedestrian: +1 along the sidewalk lane, -1 against
P_LAT = 24  # pedestrian: offset from the sidewalk centre [m]
P_SPEED = 25  # pedestrian walking speed [m/s]
P_WALKED = 26  # distance walked in free mode [m]
P_MAX_WALK = 27  # [m]
P_TARGET_S = 28  # where on the target sidewalk a crossing ends [m]
BASE_X = 29  # static: box centre before a door opens [m]
BASE_Y = 30
BASE_WIDTH = 31
DOOR = 32  # static: door width [m]
STUCK = 33  # vehicles: time spent below 0.1 m/s without a break [s]
NUM_FLOAT = 34

# ---------------------------------------------------------------- actor ints I [NI, B, N]
KIND = 0  # ActorKind
ACTIVE = 1  # 0/1
ID = 2  # stable actor id within an episode
LANE = 3  # current lane (vehicles: driving lane; pedestrians: sidewalk), -1 unknown
PLAN_LEN = 4  # valid entries of the lane plan
LANE_PREV = 5  # lane being left during a lane change, -1 otherwise
ROUTE_PLAN = 6  # 1: the plan came from a given route (no random lane changes)
BACKGROUND = 7  # 1: respawned to keep density
IGNORE_SIGNALS = 8
IGNORE_ACTORS = 9
BEH_KIND = 10  # BehaviourKind
TRIGGERED = 11
STOP_DONE = 12  # has stopped at the stop sign ahead
MODE = 13  # pedestrian mode (WALK_SIDEWALK, WALK_FREE, STAND, DOWN)
P_TARGET_LANE = 14  # sidewalk a crossing pedestrian is heading to, -1 none
NUM_INT = 15

# ---------------------------------------------------------------- world ints W [NW, B]
STEP_COUNT = 0  # decision steps since reset
NEXT_ID = 1  # next id for a spawned actor
FIRST_BG_VEHICLE = 2  # first vehicle slot free for background traffic
FIRST_BG_PEDESTRIAN = 3  # first pedestrian slot (absolute) free for background walkers
NUM_WORLD_INT = 4

# ---------------------------------------------------------------- map lane ints [NLI, L]
L_TYPE, L_JUNCTION, L_TURN, L_LEFT, L_RIGHT, L_CHANGE_LEFT, L_CHANGE_RIGHT, L_STOP, L_CONTROL = range(9)
L_OPPOSITE = 9  # innermost lane of the other direction across the centre line, -1 if none
L_MARK_LEFT, L_MARK_RIGHT = 10, 11  # MarkType of the edges
NUM_LANE_INT = 12
# map lane floats [NLF, L]
L_LENGTH, L_SPEED, L_CURVATURE = range(3)
L_MERGE_S = 3  # a dead end that tapers (an acceleration lane): where it gets too narrow [m]; inf none
NUM_LANE_FLOAT = 4
# map stop-line floats [NKF, K] and ints [NKI, K]: the shared tables of sim_bridge.violations
from sim_bridge.violations import K_AX as K_AX  # noqa: E402
from sim_bridge.violations import K_AY as K_AY  # noqa: E402
from sim_bridge.violations import K_BX as K_BX  # noqa: E402
from sim_bridge.violations import K_BY as K_BY  # noqa: E402
from sim_bridge.violations import K_HEADING as K_HEADING  # noqa: E402
from sim_bridge.violations import K_IS_LIGHT as K_IS_LIGHT  # noqa: E402
from sim_bridge.violations import K_LANE as K_LANE  # noqa: E402
from sim_bridge.violations import K_S as K_S  # noqa: E402
from sim_bridge.violations import K_SIGNAL as K_SIGNAL  # noqa: E402
from sim_bridge.violations import NUM_STOP_FLOAT as NUM_STOP_FLOAT  # noqa: E402
from sim_bridge.violations import NUM_STOP_INT as NUM_STOP_INT  # noqa: E402

#: names of the actor float / int columns, for views and snapshots
FLOAT_NAMES = [
    "x",
    "y",
    "yaw",
    "speed",
    "length",
    "width",
    "steer",
    "accel",
    "accel_cmd",
    "steer_cmd",
    "wheelbase",
    "s",
    "lat0",
    "lc_elapsed",
    "lc_duration",
    "cruise",
    "speed_factor",
    "lat_bias",
    "trig_dist",
    "trig_time",
    "beh_decel",
    "beh_dir",
    "beh_time",
    "p_dir",
    "p_lat",
    "p_speed",
    "p_walked",
    "p_max_walk",
    "p_target_s",
    "base_x",
    "base_y",
    "base_width",
    "door",
    "stuck",
]
INT_NAMES = [
    "kind",
    "active",
    "ids",
    "lane",
    "plan_len",
    "lane_prev",
    "route_plan",
    "background",
    "ignore_signals",
    "ignore_actors",
    "beh_kind",
    "triggered",
    "stop_done",
    "mode",
    "p_target_lane",
]
assert len(FLOAT_NAMES) == NUM_FLOAT and len(INT_NAMES) == NUM_INT
