// Starts web-push-testing's push service (its own Express app and PushApiModel)
// on 127.0.0.1 only, on a port the system picks, and prints "listening on PORT"
// once it accepts connections. The package's own CLI listens on every interface
// of a fixed port and detaches; a test needs neither.
'use strict';

const http = require('http');
const WebPushTestingServer = require('web-push-testing/src/server.js');
const {PushApiModel} = require('web-push-testing/src/PushApiModel.js');

const model = new PushApiModel();
const server = new WebPushTestingServer(model, 0);
server.setRequestHandlers();
const listener = http.createServer(server._app);
listener.listen(0, '127.0.0.1', () => {
	const {port} = listener.address();
	// Subscriptions' endpoints name this port; the constructor only knew 0.
	model.notifyUrl = `http://localhost:${port}/notify/`;
	console.log(`listening on ${port}`);
});
process.on('SIGTERM', () => listener.close(() => process.exit(0)));
