// An OCPP charge point that flexopt did not write: ocpp-rpc (npm) in strict mode, which validates every message
// both ways against the OCPP 1.6J / 2.0.1 JSON schemas. Used by tests/adapters/test_ocpp_security.py.
//
// node ocpp_rpc_charge_point.js '{"endpoint": "ws://127.0.0.1:9000", "identity": "CP-1", "protocol": "ocpp1.6",
//   "password": "...", "passwordHex": "...", "ca": "ca.pem", "cert": "cp.pem", "key": "cp.key"}'
// Prints one JSON line per event: refused (with the HTTP status or the TLS error), connected, booted, call (each
// SetChargingProfile / ClearChargingProfile received, answered Accepted; GetConfiguration / GetVariables), closed.
// Option maxPeriods: the longest schedule it takes (others are Rejected). Stays up until stdin closes.
'use strict';
const fs = require('fs');
const { RPCClient, createRPCError } = require('ocpp-rpc');

const opts = JSON.parse(process.argv[2]);
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const now = () => new Date().toISOString();

async function main() {
    const wsOpts = {};
    if (opts.ca) wsOpts.ca = fs.readFileSync(opts.ca);
    if (opts.cert) {
        wsOpts.cert = fs.readFileSync(opts.cert);
        wsOpts.key = fs.readFileSync(opts.key);
    }
    const password = opts.passwordHex != null ? Buffer.from(opts.passwordHex, 'hex') : opts.password;
    const client = new RPCClient({
        endpoint: opts.endpoint, identity: opts.identity, protocols: [opts.protocol], strictMode: true,
        password, wsOpts, reconnect: false, callTimeoutMs: 10000,
    });
    const accept = (method) => ({ params }) => {
        emit({ event: 'call', method, params });
        return { status: 'Accepted' };
    };
    // maxPeriods: the charger's ChargingScheduleMaxPeriods (1.6) / SmartChargingCtrlr.PeriodsPerSchedule (2.0.1);
    // a profile with more periods is Rejected, as the chargers in issue 12 did
    const maxPeriods = opts.maxPeriods ?? null;
    const periodsOf = (params) => {
        const profile = params.csChargingProfiles ?? params.chargingProfile;
        const schedules = [].concat(profile.chargingSchedule);
        return Math.max(...schedules.map((s) => s.chargingSchedulePeriod.length));
    };
    client.handle('SetChargingProfile', ({ params }) => {
        const tooMany = maxPeriods != null && periodsOf(params) > maxPeriods;
        emit({ event: 'call', method: 'SetChargingProfile', params, rejected: tooMany });
        return { status: tooMany ? 'Rejected' : 'Accepted' };
    });
    client.handle('GetConfiguration', ({ params }) => {
        emit({ event: 'call', method: 'GetConfiguration', params });
        const known = maxPeriods == null ? [] : [
            { key: 'ChargingScheduleMaxPeriods', readonly: true, value: String(maxPeriods) }];
        const asked = params.key ?? known.map((k) => k.key);
        return {
            configurationKey: known.filter((k) => asked.includes(k.key)),
            unknownKey: asked.filter((key) => !known.some((k) => k.key === key)),
        };
    });
    client.handle('GetVariables', ({ params }) => {
        emit({ event: 'call', method: 'GetVariables', params });
        return {
            getVariableResult: params.getVariableData.map(({ component, variable }) => {
                const ours = component.name === 'SmartChargingCtrlr' && variable.name === 'PeriodsPerSchedule'
                    && maxPeriods != null;
                return ours ? { attributeStatus: 'Accepted', component, variable, attributeValue: String(maxPeriods) }
                    : { attributeStatus: 'UnknownVariable', component, variable };
            }),
        };
    });
    client.handle('ClearChargingProfile', accept('ClearChargingProfile'));
    client.handle(({ method }) => {
        emit({ event: 'call', method });
        throw createRPCError('NotImplemented');
    });
    try {
        await client.connect();
    } catch (err) {
        emit({ event: 'refused', status: err.code ?? null, message: String(err.message) });
        process.exit(0);
    }
    client.on('close', ({ code, reason }) => {
        emit({ event: 'closed', code, reason: String(reason) });
        process.exit(0);
    });
    emit({ event: 'connected', protocol: client.protocol });
    let boot;
    if (opts.protocol === 'ocpp1.6') {
        boot = await client.call('BootNotification', { chargePointVendor: 'ocpp-rpc', chargePointModel: 'peer' });
        await client.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' });
    } else {
        boot = await client.call('BootNotification', {
            reason: 'PowerUp', chargingStation: { vendorName: 'ocpp-rpc', model: 'peer' },
        });
        await client.call('StatusNotification', {
            timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1,
        });
    }
    emit({ event: 'booted', status: boot.status });
    process.stdin.on('end', async () => {
        await client.close({ code: 1000 });
        process.exit(0);
    });
    process.stdin.resume();
}

main().catch((err) => {
    emit({ event: 'error', message: String(err && err.stack || err) });
    process.exit(1);
});
