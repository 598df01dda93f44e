-- Write-side uniqueness of licence plates among live vehicles. A plate is reserved here before
-- the VehicleRegistered (or plate-changing) event is written and released after the vehicle is
-- removed or changes plate. A reservation left behind by a crash names a vehicle whose log does
-- not hold that plate, and the next registration of the plate reclaims it.
CREATE TABLE vehicle_plates (
    license_plate text        PRIMARY KEY,
    vehicle_id    uuid        NOT NULL,
    reserved_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX vehicle_plates_vehicle_idx ON vehicle_plates (vehicle_id);
