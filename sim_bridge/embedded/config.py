"""Settings of the embedded simulator (the Hydra schema ``sim/embedded`` is this dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_bridge.backends import BackendConfig


@dataclass
class VehicleLimits:
    """Kinematic bicycle limits shared by the ego and NPC vehicles."""

    max_accel: float = 3.0
    """Acceleration at full throttle [m/s²]."""
    max_brake: float = 8.0
    """Deceleration at full brake [m/s²]."""
    max_steer: float = 0.6
    """Front-wheel angle at full lock [rad]."""
    max_steer_rate: float = 1.5
    """Steering actuator rate limit [rad/s]."""
    max_speed: float = 40.0
    """Top speed [m/s]."""
    drag: float = 0.02
    """Rolling + air resistance as deceleration per unit speed [1/s]."""


@dataclass
class DriverModel:
    """NPC driving behaviour: IDM car following, pure-pursuit steering, gap acceptance."""

    accel: float = 2.0
    """IDM maximum acceleration [m/s²]."""
    comfort_brake: float = 3.0
    """IDM comfortable deceleration [m/s²]."""
    headway: float = 1.2
    """IDM desired time headway [s]."""
    min_gap: float = 2.5
    """IDM standstill bumper gap [m]."""
    lookahead_time: float = 0.6
    """Pure-pursuit lookahead per unit speed [s]."""
    min_lookahead: float = 4.0
    """Pure-pursuit minimum lookahead [m]."""
    max_lateral_accel: float = 2.5
    """Curve speed limit v = sqrt(a_lat · R) [m/s²]."""
    lane_change_rate: float = 0.05
    """Chance per second that an eligible background vehicle starts a lane change."""
    lane_change_time: float = 3.0
    """Duration of a lane change [s]."""
    speed_spread: float = 0.1
    """Each background driver cruises at the limit × U(1 − spread, 1 + spread)."""
    stuck_timeout: float = 60.0
    """A background vehicle standing still this long is removed (and respawned elsewhere), which
    dissolves gridlocks as SUMO's time-to-teleport does [s]."""
    yield_horizon: float = 4.0
    """Conflicting vehicles arriving at a junction within this many seconds are yielded to [s]."""
    critical_gap: float = 5.0
    """A vehicle at a stop sign enters when every conflicting priority vehicle is at least this
    far (in time) from the junction [s]."""
    min_critical_gap: float = 2.5
    """The critical gap after waiting ``impatience_time`` (it shrinks linearly in between, as
    SUMO's impatience) [s]."""
    impatience_time: float = 30.0
    """Standstill at a stop sign after which the shortest gap is accepted [s]."""


@dataclass
class CollisionResponse:
    """What happens when bodies touch (``sim_bridge.embedded.contact``): as in CARLA, nothing passes
    through anything."""

    enabled: bool = True
    """Separate bodies in contact and exchange momentum (false: they pass through each other and
    only the ego's collisions are recorded, as before collision response existed)."""
    restitution: float = 0.2
    """Share of the closing speed along the contact normal that bounces back (car crashes are
    mostly plastic: 0.1–0.3)."""
    vehicle_mass: float = 1500.0
    """Mass of a 4.6 m × 1.9 m car [kg]; other vehicles scale by footprint."""
    pedestrian_mass: float = 80.0
    """[kg]"""
    breakaway_speed: float = 2.0
    """A vehicle standing still with its brake on holds like a wall against hits closing slower
    than this (tyre friction, μ g ≈ 8 m/s², beats any throttle) [m/s]."""


@dataclass
class EmbeddedConfig(BackendConfig):
    """The embedded backend: batch size, rates, capacities, sensors."""

    backend: str = "embedded"
    """This schema's backend (``sim_bridge.backends``)."""
    physics_dt: float = 0.05
    """Physics step [s] (20 Hz)."""
    decision_dt: float = 0.1
    """Decision step [s] (10 Hz); a multiple of ``physics_dt``."""
    max_vehicles: int = 48
    """Vehicle slots per world, the ego included."""
    max_pedestrians: int = 24
    """Pedestrian slots per world."""
    max_statics: int = 12
    """Static-obstacle slots per world."""
    threads: int = 0
    """Threads stepping disjoint groups of worlds (0 = one per core; results do not depend on it)."""
    render_bev: bool = True
    """Render the BEV raster (off for pure-physics benchmarks: ``bev`` is then all zeros)."""
    vehicle: VehicleLimits = field(default_factory=VehicleLimits)
    driver: DriverModel = field(default_factory=DriverModel)
    collision: CollisionResponse = field(default_factory=CollisionResponse)

    @property
    def substeps(self) -> int:
        """Physics steps per decision."""
        n = round(self.decision_dt / self.physics_dt)
        if n < 1 or abs(n * self.physics_dt - self.decision_dt) > 1e-9:
            raise ValueError(
                f"decision_dt={self.decision_dt} must be a positive multiple of physics_dt={self.physics_dt}"
            )
        return n
